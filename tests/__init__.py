"""matid's tests, run by ctest from the repository root as python3 -m tests.NAME."""
