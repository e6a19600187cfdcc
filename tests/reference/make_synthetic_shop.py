#!/usr/bin/env python3
"""Writes tests/fixtures/synthetic_shop_{train,test}.csv: a made-up shop (no real data) whose
titles share brands, colours, sizes and some product words across categories, with 8 % of the
training labels flipped, so that a TF-IDF SVM has real decisions to make. Deterministic (seeded).
scikit-learn's predictions on it (scripts/sklearn-baseline.py --record) are the reference the Rust
baseline is checked against.

    python3 tests/reference/make_synthetic_shop.py
"""
import csv
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")

CATEGORIES = {
    "Home > Kitchen > Kettles": ["kettle", "electric kettle", "tea kettle", "water boiler"],
    "Home > Kitchen > Mugs": ["mug", "coffee mug", "travel mug", "tea cup"],
    "Home > Kitchen > Pans": ["frying pan", "skillet", "wok", "saucepan"],
    "Home > Decor > Vases": ["vase", "flower vase", "bud vase"],
    "Home > Decor > Cushions": ["cushion", "cushion cover", "throw pillow"],
    "Home > Bath > Towels": ["bath towel", "hand towel", "towel set"],
    "Fashion > Men > Shirts": ["shirt", "casual shirt", "formal shirt", "oxford shirt"],
    "Fashion > Men > T-Shirts": ["t-shirt", "tee", "polo t-shirt", "graphic tee"],
    "Fashion > Men > Jeans": ["jeans", "slim jeans", "denim jeans"],
    "Fashion > Women > Dresses": ["dress", "maxi dress", "midi dress", "shirt dress"],
    "Fashion > Women > Tops": ["top", "crop top", "tunic top", "blouse"],
    "Fashion > Women > Kurtas": ["kurta", "printed kurta", "anarkali kurta"],
    "Footwear > Men > Sneakers": ["sneakers", "running shoes", "trainers"],
    "Footwear > Men > Sandals": ["sandals", "floaters", "slides"],
    "Footwear > Women > Heels": ["heels", "block heels", "stilettos"],
    "Footwear > Women > Flats": ["ballerinas", "flats", "bellies"],
    "Electronics > Mobiles": ["smartphone", "mobile phone", "android phone"],
    "Electronics > Accessories > Chargers": ["charger", "fast charger", "usb charger", "wall adapter"],
    "Electronics > Accessories > Cases": ["phone case", "back cover", "flip cover"],
    "Electronics > Audio > Headphones": ["headphones", "earbuds", "headset", "earphones"],
    "Electronics > Audio > Speakers": ["speaker", "bluetooth speaker", "soundbar"],
    "Toys > Puzzles": ["jigsaw puzzle", "puzzle", "brain teaser"],
    "Toys > Dolls": ["doll", "fashion doll", "rag doll"],
    "Toys > Vehicles": ["toy car", "rc car", "toy truck", "die-cast car"],
}
BRANDS = ["Acme", "Zenith", "Nova", "Orbit", "Lumo", "Kiva", "Tara", "Vexa", "Bolt", "Miro", "Pico", "Rangi"]
COLOURS = ["red", "blue", "black", "white", "green", "navy", "beige", "pink", "grey"]
EXTRAS = ["for men", "for women", "for kids", "pack of 2", "pack of 3", "combo", "new", "premium",
          "with case", "set", "1.5 L", "500 ml", "size 8", "size M", "XL", "64 GB", "USB-C", "cotton",
          "steel", "ceramic", "wireless", "classic", "2024 edition"]


def title(rng, nouns):
    parts = [rng.choice(BRANDS)]
    if rng.random() < 0.6:
        parts.append(rng.choice(COLOURS))
    parts.append(rng.choice(nouns))
    for _ in range(rng.randint(0, 3)):
        parts.append(rng.choice(EXTRAS))
    if rng.random() < 0.15:
        # A word of another category's product: the ambiguity real titles have ("shirt dress").
        parts.append(rng.choice(rng.choice(list(CATEGORIES.values()))))
    return " ".join(parts)


def main():
    rng = random.Random(20261206)
    labels = list(CATEGORIES)
    for name, per_cat, noise in (("train", 25, 0.08), ("test", 12, 0.0)):
        rows = []
        for label in labels:
            for _ in range(per_cat):
                gold = label if rng.random() >= noise else rng.choice(labels)
                rows.append((title(rng, CATEGORIES[label]), gold))
        rng.shuffle(rows)
        with open(os.path.join(FIXTURES, f"synthetic_shop_{name}.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["id", "title", "category_path"])
            for i, (t, l) in enumerate(rows):
                w.writerow([f"{name[:2]}{i}", t, l])


if __name__ == "__main__":
    main()
