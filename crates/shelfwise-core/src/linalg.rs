//! Small dense linear algebra shared by the fits (the stack's gate, GPTQ): f64, row-major.

/// In place: a symmetric positive definite `n × n` matrix `a` → its lower Cholesky factor `L`
/// (`a = L Lᵀ`; the upper triangle zeroed). `Err(j)`: column `j`'s pivot is not positive and
/// finite (the matrix is not positive definite, or holds NaN/∞); `a` is then partly overwritten.
pub fn cholesky(a: &mut [f64], n: usize) -> Result<(), usize> {
    assert!(a.len() >= n * n, "cholesky: {} values for {n}x{n}", a.len());
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return Err(j);
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
        for k in j + 1..n {
            a[j * n + k] = 0.0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_the_textbook_example_and_refuses_what_is_not_positive_definite() {
        // The classic example: L = [[2, 0, 0], [6, 1, 0], [-8, 5, 3]].
        let mut a = [4.0, 12.0, -16.0, 12.0, 37.0, -43.0, -16.0, -43.0, 98.0];
        cholesky(&mut a, 3).unwrap();
        assert_eq!(a, [2.0, 0.0, 0.0, 6.0, 1.0, 0.0, -8.0, 5.0, 3.0]);
        assert_eq!(cholesky(&mut [1.0, 2.0, 2.0, 1.0], 2), Err(1));
        assert_eq!(cholesky(&mut [f64::NAN, 0.0, 0.0, 1.0], 2), Err(0));
        assert_eq!(cholesky(&mut [0.0], 1), Err(0));
    }
}
