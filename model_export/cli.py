"""matid training pipeline: python3 -m model_export STAGE [options]
(model_export/__main__.py calls main() here.)

Stages: prepare, augment, train, export, evaluate, and all (in that order);
publish copies a model directory into a versioned repository (repository.py).
Work files go to --work (default out/train); the model directory the server
loads goes to --out (default models/fashion-mnist). With --repository,
export and all also publish --out there as the next version.

    /usr/bin/python3 -m model_export all --quick            # ~3.5 minutes, accuracy >= 0.90
    /usr/bin/python3 -m model_export all                    # full profile
    /usr/bin/python3 -m model_export prepare --source DIR   # any folder-per-class dataset
    /usr/bin/python3 -m model_export evaluate --predictions preds.jsonl
    /usr/bin/python3 -m model_export publish --model_dir SRC --repository DIR --name NAME
"""
import argparse
import json
import os
import sys
import time
from typing import List, Optional, Tuple

from . import debian_python  # noqa: E402

debian_python.ensure()

import numpy as np  # noqa: E402

from . import augment as augment_lib  # noqa: E402
from . import dataset  # noqa: E402
from . import evaluate as evaluate_lib  # noqa: E402
from . import export as export_lib  # noqa: E402
from . import loader  # noqa: E402
from . import repository as repository_lib  # noqa: E402
from . import resume as resume_lib  # noqa: E402
from . import sagemaker  # noqa: E402
from . import signing  # noqa: E402
from . import train as train_lib  # noqa: E402

# What --quick changes: a usable model in a few minutes on 2 cores.
QUICK_PROFILE = {
    "limit_per_class": 4000, "augment_fraction": 0.05, "epochs": 8,
    "lr_scheduler_step": "6", "early_stopping": False, "max_minutes": 3.5,
    "mini_batch_size": 128, "early_stopping_min_epochs": 10, "widths": [16, 32, 64],
}
# The defaults: >= 0.94 on Fashion-MNIST in <= 45 minutes on 2 cores (issue 17).
# A ResNet-14 twice as wide as the quick one (32/64/128), which bf16 and
# channels_last make affordable; the rate drops at 12 and 20; early
# stopping is on but cannot stop before the last drop has had its epochs
# (20 epochs with drops at 10 and 16 stopped at 0.9399, one image short).
FULL_PROFILE = {
    "limit_per_class": 0, "augment_fraction": 0.1, "epochs": 24,
    "lr_scheduler_step": "12,20", "early_stopping": True, "max_minutes": 0.0,
    "mini_batch_size": 128, "early_stopping_min_epochs": 23, "widths": [32, 64, 128],
}
# --photo: a folder of part photos (tens per class, camera size): torchvision's
# ResNet-18 at 160 px, online photo augmentation read from disk, no offline
# copies, AdamW (on six synthetic parts with 27 training photos each: SGD at
# 0.01 reached 0.91 test accuracy in 120 epochs, AdamW at 0.001 0.99;
# bench/RESULTS.md), a fixed number of epochs inside a time budget.
PHOTO_PROFILE = {
    "limit_per_class": 0, "augment_fraction": 0.0, "epochs": 120,
    "lr_scheduler_step": "80,105", "early_stopping": False, "max_minutes": 8.0,
    "mini_batch_size": 16, "early_stopping_min_epochs": 120, "widths": [16, 32, 64],
    "num_layers": 18, "image_shape": "3,160,160", "learning_rate": 0.001, "optimizer": "adam",
    "weight_decay": 0.01,
}
# What the quick and full profiles leave as they were before --photo.
FASHION_DEFAULTS = {"num_layers": 0, "image_shape": "", "learning_rate": 0.1,
                    "optimizer": "sgd", "weight_decay": 0.0001}


# Without --image_shape, larger stored images are trained at most this big.
MAX_DEFAULT_INPUT = 224
# From this input size on, --photo_augment auto turns photo augmentation on.
PHOTO_INPUT = 96


def str2bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def int_list(text: str) -> List[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m model_export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["prepare", "augment", "train", "export", "evaluate", "all",
                                          "publish"])
    parser.add_argument("--work", default="out/train", help="work directory (data, manifests, checkpoints)")
    parser.add_argument("--out", default="models/fashion-mnist", help="model directory to write/evaluate")
    parser.add_argument("--quick", action="store_true", help="quick profile: " + json.dumps(QUICK_PROFILE) + "; default: full profile " + json.dumps(FULL_PROFILE))
    parser.add_argument("--photo", action="store_true",
                        help="photo profile, for a folder of part photos: " +
                        json.dumps(PHOTO_PROFILE))
    parser.add_argument("--seed", type=int, default=42)

    g = parser.add_argument_group("prepare")
    g.add_argument("--source", default="fashion-mnist", help="fashion-mnist, or a folder of class folders")
    g.add_argument("--test_source", help="folder of class folders used as the test set")
    g.add_argument("--validation_fraction", type=float, default=0.1)
    g.add_argument("--limit_per_class", type=int, default=None, help="training images per class (0: all)")
    g.add_argument("--image_size", type=int, default=None,
                   help="photos from a folder are stored with a short side of N, the aspect "
                        f"kept, as JPEG (default {dataset.PHOTO_SIZE}, SageMaker's resize; 0: "
                        "stored as they are); smaller images are copied")
    g.add_argument("--expect_classes", type=int, default=0,
                   help="stop unless --source has this many class folders (0: any; SageMaker's "
                        "num_classes)")
    g.add_argument("--min_per_class", type=int, default=5,
                   help="fewest photos a class may have in --source")
    g.add_argument("--strict_images", type=str2bool, default=False,
                   help="an unreadable or truncated photo stops prepare (default: listed, skipped)")
    g.add_argument("--workers", type=int, default=2,
                   help="processes that decode photos (prepare) and training images (train)")

    g = parser.add_argument_group("augment (training images only)")
    g.add_argument("--augment_fraction", type=float, default=None,
                   help="fraction of training images that get augmented copies (default 0.1)")
    g.add_argument("--rotate45", type=str2bool, default=False)
    g.add_argument("--rotate90", type=str2bool, default=False)
    g.add_argument("--flip_horizontal", type=str2bool, default=True)
    g.add_argument("--flip_vertical", type=str2bool, default=False)
    g.add_argument("--saturation", default="", help="channels to saturate: red,green,blue")
    g.add_argument("--noise_sigma", type=float, default=8.0, help="gaussian noise sigma (0: off)")

    g = parser.add_argument_group("train (SageMaker image-classification names)")
    defaults = train_lib.Hyperparameters()
    g.add_argument("--mini_batch_size", type=int, default=None)
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--learning_rate", type=float, default=None,
                   help=f"default {defaults.learning_rate} (photo profile: "
                        f"{PHOTO_PROFILE['learning_rate']})")
    g.add_argument("--resume", default="",
                   help="train on from an exported model directory (e.g. the version the box "
                        "serves): its architecture, input size and weights; the head keeps the "
                        "classes it knew and gets rows for new ones")
    g.add_argument("--lr_scheduler_factor", type=float, default=defaults.lr_scheduler_factor)
    g.add_argument("--lr_scheduler_step", default=None)
    g.add_argument("--early_stopping", type=str2bool, default=None)
    g.add_argument("--early_stopping_patience", type=int, default=defaults.early_stopping_patience)
    g.add_argument("--early_stopping_tolerance", type=float, default=defaults.early_stopping_tolerance)
    g.add_argument("--early_stopping_min_epochs", type=int, default=None)
    g.add_argument("--momentum", type=float, default=defaults.momentum)
    g.add_argument("--optimizer", choices=train_lib.OPTIMIZERS, default=None,
                   help="sgd (with --momentum) or adam (AdamW with --weight_decay); default "
                        "sgd (photo profile: " + str(PHOTO_PROFILE.get("optimizer", "sgd")) + ")")
    g.add_argument("--weight_decay", type=float, default=None,
                   help=f"default {defaults.weight_decay} (photo profile: "
                        f"{PHOTO_PROFILE['weight_decay']})")
    g.add_argument("--widths", type=int_list, default=None,
                   help="channels per stage (quick: 16,32,64; full: 32,64,128)")
    g.add_argument("--blocks", type=int_list, default=defaults.blocks, help="blocks per stage")
    g.add_argument("--max_minutes", type=float, default=None, help="training time budget (0: none)")
    g.add_argument("--threads", type=int, default=2, help="threads per training process")
    g.add_argument("--ghost_shares", type=int, default=1, help=argparse.SUPPRESS)  # tests
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: CUDA when this machine's torch has it, else the CPU. Under "
                        "`torchrun --nproc_per_node N -m model_export train`, N processes train "
                        "with DistributedDataParallel (gloo on CPU, nccl on CUDA); "
                        "--mini_batch_size is the global batch")
    g.add_argument("--image_shape", default=None,
                   help="C,H,W of the model's input, e.g. 3,224,224 (default: the stored "
                        f"images' size, at most {MAX_DEFAULT_INPUT} px)")
    g.add_argument("--num_layers", type=int, default=None,
                   help="0: a small ResNet sized by --widths/--blocks; 18, 34, 50: torchvision's")
    g.add_argument("--pretrained", default=defaults.pretrained,
                   help="torchvision ImageNet state dict for the backbone (a file on this "
                        "machine, e.g. resnet18-f37072fd.pth; never downloaded)")
    g.add_argument("--backbone_lr_factor", type=float, default=defaults.backbone_lr_factor,
                   help="with --pretrained: the backbone's learning rate over the head's")
    g.add_argument("--freeze_backbone_epochs", type=int, default=defaults.freeze_backbone_epochs,
                   help="with --pretrained: first epochs that train the new head only")
    g.add_argument("--photo_augment", choices=["auto", "true", "false"], default="auto",
                   help="online random resized crop, rotation by any angle, vertical flip and "
                        f"colour jitter (auto: for inputs of {PHOTO_INPUT} px and more)")
    g.add_argument("--cache_mb", type=int, default=1024,
                   help="hold the training set in memory when it fits (else read it from disk); "
                        "with photo augmentation: memory for photos decoded at 1.5x the input")
    g.add_argument("--crop_padding", type=int, default=defaults.crop_padding,
                   help="online random crop after zero padding by N pixels (0: off; small inputs)")
    g.add_argument("--label_smoothing", type=float, default=defaults.label_smoothing)
    g.add_argument("--bf16", choices=["auto", "true", "false"], default=defaults.bf16,
                   help="bf16 autocast, fp32 master weights (auto: when the CPU has avx512_bf16/amx_bf16)")
    g.add_argument("--channels_last", type=str2bool, default=defaults.channels_last)

    g = parser.add_argument_group("export / evaluate")
    g.add_argument("--name", default="fashion-mnist-resnet")
    g.add_argument("--version", default=None)
    g.add_argument("--int8", type=str2bool, default=True, help="also export model_int8.pt")
    g.add_argument("--calibration_images", type=int, default=512)
    g.add_argument("--golden_images", type=int, default=32,
                   help="validation images written as the model's golden set (golden.json), "
                        "which the server checks a new version against before serving it")
    g.add_argument("--predictions", help="matid-classify --format=jsonl output to evaluate")
    g.add_argument("--report_dir", default=None, help="default: WORK/evaluation")

    g = parser.add_argument_group("publish (versioned model repository)")
    g.add_argument("--repository", default=None,
                   help="repository folder: publish into REPOSITORY/NAME/<next version>/")
    g.add_argument("--model_dir", default=None, help="model directory to publish (default: --out)")
    g.add_argument("--signing_key", default=None,
                   help="Ed25519 private key (PEM): sign the version's metadata.json, for "
                        "matid-server --trusted_model_keys (docs/model-repository.md)")
    return parser


def take_architecture(args: argparse.Namespace, point: resume_lib.ResumePoint) -> None:
    """With --resume, the network is the resumed model's: options left unset
    take its values; one set to another value is an error naming it."""
    theirs = {"num_layers": point.num_layers, "widths": point.widths, "blocks": point.blocks,
              "image_shape": f"{point.channels},{point.input_height},{point.input_width}"}
    for key, value in theirs.items():
        given = getattr(args, key)
        if key == "blocks" and given == train_lib.Hyperparameters().blocks:
            given = None  # the default, not a choice
        if key == "image_shape" and given is not None:
            given = ",".join(v.strip() for v in given.split(","))
        if given not in (None, value):
            raise ValueError(f"--{key} {given} differs from the resumed model's {value} "
                             f"(--resume {point.model_dir}); leave --{key} out to train on")
        setattr(args, key, value)


def resolve_profile(args: argparse.Namespace) -> argparse.Namespace:
    """Fills options left unset from the quick profile or the full defaults
    (with --resume, the architecture from the resumed model first)."""
    if args.quick and args.photo:
        print("model_export: error: --quick and --photo are two profiles; pick one",
              file=sys.stderr)
        raise SystemExit(2)
    if args.resume and args.stage in ("train", "all"):
        take_architecture(args, resume_lib.read(args.resume))
    profile = PHOTO_PROFILE if args.photo else {**(QUICK_PROFILE if args.quick else FULL_PROFILE),
                                                **FASHION_DEFAULTS}
    for key, value in profile.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def input_size(args: argparse.Namespace, prepared: dataset.PreparedDataset) -> Tuple[int, int]:
    """(width, height) the model takes: --image_shape, or the stored images'
    size capped at MAX_DEFAULT_INPUT (SageMaker's default is 3,224,224)."""
    channels = 1 if prepared.color == "gray" else 3
    if args.image_shape:
        try:
            c, h, w = (int(v) for v in args.image_shape.split(","))
        except ValueError:
            raise ValueError(f"--image_shape {args.image_shape!r}: expected C,H,W such as "
                             "3,224,224") from None
        if c != channels or h < 8 or w < 8:
            raise ValueError(f"--image_shape {args.image_shape}: the images are "
                             f"{prepared.color} ({channels} channel(s)) and H, W must be >= 8")
        return w, h
    first = dataset.load_image(os.path.join(prepared.data_dir, prepared.splits["train"][0].path),
                               prepared.color)
    width, height = first.shape[1], first.shape[0]
    scale = min(1.0, MAX_DEFAULT_INPUT / max(width, height))
    return max(8, round(width * scale)), max(8, round(height * scale))


def batch_source(args: argparse.Namespace, prepared: dataset.PreparedDataset,
                 samples: List[dataset.Sample], size: Tuple[int, int],
                 training: bool) -> train_lib.BatchSource:
    """Batches of `samples` at `size`: in memory when small and not
    photo-augmented, else read from disk by worker processes."""
    photo = args.photo_augment == "true" or (args.photo_augment == "auto" and
                                              min(size) >= PHOTO_INPUT)
    channels = 1 if prepared.color == "gray" else 3
    in_memory = len(samples) * size[0] * size[1] * channels <= args.cache_mb << 20
    if in_memory and not (training and photo):
        images, labels = dataset.load_arrays(prepared.data_dir, samples, prepared.color, size)
        return loader.ArrayBatches(images, labels, args.mini_batch_size,
                                   args.crop_padding if training else 0,
                                   flip=training and args.flip_horizontal)
    return loader.FolderBatches(prepared.data_dir, samples, prepared.color, size,
                                args.mini_batch_size, args.workers,
                                loader.PhotoAugment() if training and photo else None, args.seed,
                                args.cache_mb << 20, flip=training and args.flip_horizontal)


def stage_prepare(args: argparse.Namespace) -> None:
    started = time.monotonic()
    prepared = dataset.prepare(args.work, args.source, args.validation_fraction, args.seed,
                               args.limit_per_class, args.test_source,
                               image_size=args.image_size, min_per_class=args.min_per_class,
                               strict=args.strict_images, workers=args.workers)
    if args.expect_classes and len(prepared.labels) != args.expect_classes:
        raise dataset.DatasetError(
            f"--expect_classes (num_classes) is {args.expect_classes}, but {args.source} has "
            f"{len(prepared.labels)} class folders: {', '.join(prepared.labels)}")
    counts = {k: len(v) for k, v in prepared.splits.items()}
    print(f"prepare: {counts} images, {len(prepared.labels)} classes ({prepared.color}) "
          f"in {time.monotonic() - started:.1f}s; manifests in {args.work}/manifests")


def stage_augment(args: argparse.Namespace) -> None:
    prepared = dataset.load_prepared(args.work)
    options = augment_lib.AugmentOptions(
        fraction=args.augment_fraction, rotate45=args.rotate45,
        rotate90=args.rotate90, flip_horizontal=args.flip_horizontal,
        flip_vertical=args.flip_vertical,
        saturation=[c for c in args.saturation.split(",") if c], noise_sigma=args.noise_sigma,
        seed=args.seed)
    copies, combined = augment_lib.augment_training_set(
        prepared.data_dir, os.path.join(args.work, "manifests"), prepared.splits["train"],
        prepared.labels, prepared.color, options)
    print(f"augment: {len(copies)} augmented copies; training manifest has {len(combined)} images "
          f"(train_augmented.lst / .jsonl)")


def training_samples(args: argparse.Namespace,
                     prepared: dataset.PreparedDataset) -> List[dataset.Sample]:
    path = os.path.join(args.work, "manifests", "train_augmented.lst")
    return dataset.read_lst(path) if os.path.exists(path) else prepared.splits["train"]


def stage_train(args: argparse.Namespace) -> None:
    prepared = dataset.load_prepared(args.work)
    size = input_size(args, prepared)
    started = time.monotonic()
    train_source = batch_source(args, prepared, training_samples(args, prepared), size, True)
    val_source = batch_source(args, prepared, prepared.splits["val"], size, False)
    print(f"train: {train_source.count} training and {val_source.count} validation images "
          f"({size[0]}x{size[1]}) ready in {time.monotonic() - started:.1f}s")
    hp = train_lib.Hyperparameters(
        mini_batch_size=args.mini_batch_size, epochs=args.epochs, learning_rate=args.learning_rate,
        lr_scheduler_factor=args.lr_scheduler_factor, lr_scheduler_step=args.lr_scheduler_step,
        early_stopping=args.early_stopping, early_stopping_patience=args.early_stopping_patience,
        early_stopping_tolerance=args.early_stopping_tolerance,
        early_stopping_min_epochs=args.early_stopping_min_epochs, momentum=args.momentum,
        weight_decay=args.weight_decay, optimizer=args.optimizer, widths=args.widths,
        blocks=args.blocks,
        max_minutes=args.max_minutes, threads=args.threads, device=args.device,
        ghost_shares=args.ghost_shares,
        seed=args.seed, crop_padding=args.crop_padding, label_smoothing=args.label_smoothing,
        bf16=args.bf16, channels_last=args.channels_last, num_layers=args.num_layers,
        pretrained=args.pretrained, backbone_lr_factor=args.backbone_lr_factor,
        freeze_backbone_epochs=args.freeze_backbone_epochs, resume=args.resume)
    train_lib.train(train_source, val_source, prepared.labels, hp,
                    os.path.join(args.work, "checkpoints"))


def stage_export(args: argparse.Namespace) -> None:
    prepared = dataset.load_prepared(args.work)
    model, info = train_lib.load_checkpoint(os.path.join(args.work, "checkpoints", "best.pt"))
    size = (info.get("input_width", info["input_size"]),
            info.get("input_height", info["input_size"]))
    rng = np.random.default_rng(args.seed)
    train_samples = prepared.splits["train"]
    pick = rng.choice(len(train_samples), size=min(args.calibration_images, len(train_samples)),
                      replace=False)
    calibration, _ = dataset.load_arrays(prepared.data_dir, [train_samples[i] for i in pick],
                                         prepared.color, size)
    check, check_truth = dataset.load_arrays(prepared.data_dir, prepared.splits["val"][:1000],
                                             prepared.color, size)
    export_lib.export_model(
        model, args.out, prepared.labels, prepared.color, size[0], size[1], info["mean"],
        info["std"], calibration, check, name=args.name, version=args.version,
        extra_metrics={"val_accuracy": info["val_accuracy"], "best_epoch": info["epoch"]},
        int8=args.int8)
    resume_lib.save(os.path.join(args.out, resume_lib.WEIGHTS_FILE),
                    {**info, "state_dict": model.state_dict()}, prepared.labels)
    golden = min(args.golden_images, len(check))
    minimum = export_lib.write_golden_set(model, args.out, check[:golden], check_truth[:golden],
                                          prepared.labels, info["mean"], info["std"])
    print(f"export: wrote {args.out} (model.pt{', model_int8.pt' if args.int8 else ''}, "
          f"{resume_lib.WEIGHTS_FILE} for --resume, metadata.json, golden.json: {golden} validation images, min_accuracy {minimum:g})")


def stage_evaluate(args: argparse.Namespace) -> None:
    prepared = dataset.load_prepared(args.work)
    metadata = export_lib.read_metadata(args.out)
    size = (metadata["input"]["width"], metadata["input"]["height"])
    mean, std = metadata["input"]["mean"], metadata["input"]["std"]
    test = prepared.splits["test"]
    images, truth = dataset.load_arrays(prepared.data_dir, test, prepared.color, size)
    report_dir = args.report_dir or os.path.join(args.work, "evaluation")
    results = {}
    variants = ["model.pt"] + (["model_int8.pt"] if os.path.exists(os.path.join(args.out, "model_int8.pt")) else [])
    probabilities = {}
    for variant in variants:
        started = time.monotonic()
        probabilities[variant] = evaluate_lib.model_probabilities(
            os.path.join(args.out, variant), images, mean, std, metadata.get("qengine", "onednn"))
        subdir = report_dir if variant == "model.pt" else os.path.join(report_dir, "int8")
        report = evaluate_lib.write_report(subdir, truth, probabilities[variant], prepared.labels,
                                           f"{args.out}/{variant} on {len(test)} test images")
        results[variant] = report
        print(f"evaluate: {variant}: accuracy {report['accuracy']:.4f}, macro F1 "
              f"{report['macro_f1']:.4f}, macro AUC-ROC {report['macro_auc_roc']:.4f} "
              f"({time.monotonic() - started:.1f}s) -> {subdir}/report.md")
    if args.predictions:
        served = evaluate_lib.predictions_file_probabilities(args.predictions, test,
                                                              prepared.data_dir, prepared.labels)
        compare = evaluate_lib.agreement(served, probabilities["model.pt"])
        same = (compare["top1_agreement"] == 1.0 and
                compare["max_abs_score_difference"] <= evaluate_lib.SCORE_TOLERANCE)
        report = evaluate_lib.write_report(
            os.path.join(report_dir, "served"), truth, served, prepared.labels,
            f"matid-classify predictions {args.predictions}",
            {"agrees_with_offline_model": same, **compare})
        print(f"evaluate: served predictions: accuracy {report['accuracy']:.4f}; "
              f"top-1 agreement with the offline model {compare['top1_agreement']:.4f}, max score "
              f"difference {compare['max_abs_score_difference']:.2e} -> "
              f"{'AGREE' if same else 'DISAGREE'}")
    fp32 = results["model.pt"]
    metadata["metrics"].update({"accuracy": fp32["accuracy"], "macro_f1": fp32["macro_f1"],
                                "macro_auc_roc": fp32["macro_auc_roc"],
                                "test_images": fp32["samples"]})
    if "model_int8.pt" in results:
        metadata["metrics"]["int8_accuracy"] = results["model_int8.pt"]["accuracy"]
    export_lib.write_metadata(args.out, metadata)


def stage_publish(args: argparse.Namespace) -> None:
    if not args.repository:
        raise ValueError("publish needs --repository")
    model_dir = args.model_dir or args.out
    key = signing.load_signing_key(args.signing_key) if args.signing_key else None
    version = repository_lib.publish(model_dir, args.repository, args.name, key)
    print(f"publish: {model_dir} -> {os.path.join(args.repository, args.name, str(version))}",
          file=sys.stderr)
    print(version)


STAGES = {"prepare": stage_prepare, "augment": stage_augment, "train": stage_train,
          "export": stage_export, "evaluate": stage_evaluate}


def training_job_argv(parser: argparse.ArgumentParser, argv: List[str]) -> List[str]:
    """Inside a SageMaker training job, `train` is the whole pipeline on the
    job's folders and hyperparameters (sagemaker.py); options given after
    `train` still apply."""
    options = {a.dest for a in parser._actions if a.option_strings}
    switches = {a.dest for a in parser._actions if isinstance(a, argparse._StoreTrueAction)}
    job, notes = sagemaker.job_arguments(os.environ, sagemaker.read_hyperparameters(os.environ),
                                         options, switches, sagemaker.work_dir())
    print("model_export: SageMaker training job: " + " ".join(job))
    for note in notes:
        print(f"model_export: {note}")
    return job + argv[1:]


def run(argv: List[str]) -> None:
    """Runs the stages; raises what stops them."""
    parser = build_parser()
    if argv[:1] == ["train"] and sagemaker.is_training_job(os.environ):
        argv = training_job_argv(parser, argv)
    args = parser.parse_args(argv)
    args = resolve_profile(args)
    stages = list(STAGES) if args.stage == "all" else [args.stage]
    if args.repository and args.stage in ("export", "all"):
        stages.append("publish")  # the finished model directory, as the next version
    if args.signing_key:  # refused before hours of training, not after
        signing.load_signing_key(args.signing_key)
    started = time.monotonic()
    for stage in stages:
        STAGES.get(stage, stage_publish)(args)
    if args.stage == "all":
        print(f"all: done in {(time.monotonic() - started) / 60:.1f} min; model in {args.out}")


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage = argv[0] if argv else "?"
    try:
        run(argv)
        return 0
    except (dataset.DatasetError, FileNotFoundError, ValueError) as error:
        message = f"model_export {stage}: error: {error}"
    print(message, file=sys.stderr)
    if sagemaker.is_training_job(os.environ):
        sagemaker.write_failure(os.environ, message)
    return 2


if __name__ == "__main__":
    sys.exit(main())
