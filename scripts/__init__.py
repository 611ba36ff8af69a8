"""matid's scripts; Python ones run from the repository root as python3 -m scripts.NAME."""
