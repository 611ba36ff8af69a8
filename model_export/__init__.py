"""matid's training and export pipeline, run from the repository root as
`/usr/bin/python3 -m model_export STAGE` (see cli.py), and its tools:
`-m model_export.make_test_model`, `-m model_export.make_resnet18`,
`-m model_export.fashion_mnist`."""
