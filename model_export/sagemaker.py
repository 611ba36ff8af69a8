"""SageMaker's training-job contract, so the reference's own engine can run
model_export: a container whose entry point is `python3 -m model_export`,
started by SageMaker as `... train`.

Inside a training job (SM_CHANNEL_TRAIN is set), `train` runs the whole
pipeline (prepare, augment, train, export, evaluate) from SageMaker's
folders:

- SM_CHANNEL_TRAIN: a folder of class folders (`--source`);
- SM_CHANNEL_VALIDATION, if given: a folder of class folders held out and
  evaluated at the end (`--test_source`; model_export keeps its own 9:1
  validation split of the training photos for choosing the best epoch);
- SM_CHANNEL_PRETRAINED, with use_pretrained_model=1: the folder holding a
  torchvision state dict (`--pretrained`; nothing is downloaded);
- SM_MODEL_DIR: the model directory (`--out`; SageMaker uploads it);
- SM_OUTPUT_DATA_DIR: the evaluation report (`--report_dir`);
- SM_OUTPUT_DIR/failure: why the job failed, which SageMaker shows;
- SM_INPUT_CONFIG_DIR/hyperparameters.json (default /opt/ml/input/config):
  hyperparameters as strings, with the image-classification algorithm's
  names, which are model_export's own; any other model_export option
  may be given the same way.

job_arguments() is a pure function of the environment and the
hyperparameters; it is what the tests check.
"""
import json
import os
import tempfile
from typing import Dict, List, Mapping, Sequence, Tuple

DEFAULT_CONFIG_DIR = "/opt/ml/input/config"
# The algorithm's hyperparameters model_export has no use for: accepted, said.
IGNORED = ("num_training_samples", "top_k", "checkpoint_frequency", "kv_store",
           "precision_dtype", "augmentation_type", "multi_label", "use_weighted_loss")
# Set by the contract; a hyperparameter may not move them.
CONTRACT_OPTIONS = ("source", "test_source", "out", "report_dir", "work")


class ContractError(ValueError):
    """A training job's set-up that cannot run; the message names the variable
    or hyperparameter."""


def is_training_job(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("SM_CHANNEL_TRAIN"))


def read_hyperparameters(environ: Mapping[str, str]) -> Dict[str, str]:
    path = os.path.join(environ.get("SM_INPUT_CONFIG_DIR", DEFAULT_CONFIG_DIR),
                        "hyperparameters.json")
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            values = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ContractError(f"{path}: not a JSON object of hyperparameters ({error})") from None
    if not isinstance(values, dict):
        raise ContractError(f"{path}: not a JSON object of hyperparameters")
    return {str(k): str(v) for k, v in values.items()}


def pretrained_file(folder: str) -> str:
    files = sorted(n for n in os.listdir(folder) if n.endswith((".pth", ".pt")))
    if len(files) != 1:
        raise ContractError(f"use_pretrained_model=1: SM_CHANNEL_PRETRAINED ({folder}) must hold "
                            f"exactly one .pth state dict, it holds {len(files)}")
    return os.path.join(folder, files[0])


def job_arguments(environ: Mapping[str, str], hyperparameters: Mapping[str, str],
                  options: Sequence[str], switches: Sequence[str],
                  work: str) -> Tuple[List[str], List[str]]:
    """The model_export command line for a training job, and notes for the log.
    `options`: model_export's option names (dests); `switches`: those that
    take no value (store_true); `work`: the work directory to use."""
    notes = []
    model_dir = environ.get("SM_MODEL_DIR", "/opt/ml/model")
    output_data = environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")
    argv = ["all", "--source", environ["SM_CHANNEL_TRAIN"], "--out", model_dir,
            "--work", work, "--report_dir", os.path.join(output_data, "evaluation")]
    if environ.get("SM_CHANNEL_VALIDATION"):
        argv += ["--test_source", environ["SM_CHANNEL_VALIDATION"]]
    for key, value in sorted(hyperparameters.items()):
        if key in IGNORED:
            notes.append(f"hyperparameter {key}={value} is not used by model_export")
        elif key == "num_classes":
            argv += ["--expect_classes", value]
        elif key == "use_pretrained_model":
            if value not in ("0", "1"):
                raise ContractError(f"use_pretrained_model={value}: expected 0 or 1")
            if value == "1":
                if not environ.get("SM_CHANNEL_PRETRAINED"):
                    raise ContractError("use_pretrained_model=1 needs a channel named "
                                        "'pretrained' with a torchvision state dict (nothing "
                                        "is downloaded)")
                argv += ["--pretrained", pretrained_file(environ["SM_CHANNEL_PRETRAINED"])]
        elif key == "optimizer" and value not in ("sgd", "adam"):
            raise ContractError(f"optimizer={value}: model_export trains with sgd or adam")
        elif key == "resize":
            argv += ["--image_size", value]
        elif key in CONTRACT_OPTIONS:
            raise ContractError(f"hyperparameter {key} is set by the training job's folders "
                                f"(SM_CHANNEL_*, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR)")
        elif key in switches:
            if value.lower() in ("1", "true", "yes", "on"):
                argv.append(f"--{key}")
        elif key in options:
            argv += [f"--{key}", value]
        else:
            raise ContractError(f"hyperparameter {key}={value} is neither the image-"
                                f"classification algorithm's nor a model_export option "
                                f"(python3 -m model_export --help lists them)")
    return argv, notes


def write_failure(environ: Mapping[str, str], message: str) -> None:
    """SM_OUTPUT_DIR/failure, which SageMaker shows as the job's failure reason."""
    folder = environ.get("SM_OUTPUT_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "failure"), "w") as f:
            f.write(message[:1024] + "\n")


def work_dir() -> str:
    return tempfile.mkdtemp(prefix="matid-sagemaker-work-")
