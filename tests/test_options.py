"""Every option has one definition (faceswap/options/): the CLI flags, the proto mapping and the job
API's submit-time check agree on its range and choices. Walks every field."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from faceswap.errors import InvalidArgument
from faceswap.options import add_arguments, flag_name, from_args, validate
from faceswap.options.convert import ConvertOptions
from faceswap.options.detect import DetectOptions
from faceswap.options.train import DEFAULT_STEPS, PRESET_NAMES, TrainOptions
from services.common.pb.faceswap.v1 import converter_pb2, detector_pb2, jobs_pb2, trainer_pb2
from services.orchestrator.jobs import check_options, known_presets

CASES = (
    (ConvertOptions, converter_pb2.ConvertOptions, "convert"),
    (TrainOptions, trainer_pb2.TrainOptions, "train"),
    (DetectOptions, detector_pb2.DetectOptions, "detect"),
)
# Values outside a range that the proto mapping still reads as a default, so they are not refused:
# a training 0 is the default step count; the detector's -1 is its old spelling of 0.
PROTO_DEFAULTS = {("train", "steps", 0), ("train", "save_every", 0)} | {
    ("detect", name, -1) for name in ("upsample", "recover_frames")
}


def _values(f: dataclasses.Field) -> list[object]:
    """The edges of a field: each choice, both ends of its range."""
    if f.metadata.get("choices"):
        return [c for c in f.metadata["choices"] if c != ""]
    if f.metadata.get("range") is not None:
        low, high = f.metadata["range"]
        kind = type(f.default)
        return [kind(low), kind(high)]
    return []


def _outside(f: dataclasses.Field) -> list[object]:
    if f.metadata.get("choices"):
        return ["no-such-" + f.name]
    if f.metadata.get("range") is not None:
        low, high = f.metadata["range"]
        kind = type(f.default)
        step = 1 if kind is int else 0.5
        return [kind(low - step), kind(high + step)] if low - step >= -1e9 else [kind(high + step)]
    return []


def _proto_fields(msg_cls: type) -> set[str]:
    return {fd.name for fd in msg_cls.DESCRIPTOR.fields}


@pytest.mark.parametrize(("cls", "msg_cls", "stage"), CASES)
def test_every_field_round_trips_cli_proto_dataclass(cls: type, msg_cls: type, stage: str) -> None:
    walked = 0
    for f in dataclasses.fields(cls):
        if f.name not in _proto_fields(msg_cls):
            continue  # run-time settings of one process (device, threads ...)
        for value in _values(f):
            if f.metadata.get("flag", True):
                parser = argparse.ArgumentParser()
                add_arguments(parser, cls)
                opts = from_args(cls, parser.parse_args([flag_name(f.name), str(value)]))
            else:
                opts = validate(cls(**{f.name: value}))
            assert getattr(opts, f.name) == value
            msg = opts.to_proto(msg_cls)
            back = cls.from_proto(msg)
            assert getattr(back, f.name) == value, (f.name, value)
            # ... and the job API accepts the same value at submit time
            spec = jobs_pb2.SwapJobSpec()
            getattr(spec.options, stage).CopyFrom(msg)
            _submit_check(spec)
            walked += 1
    assert walked >= 10


@pytest.mark.parametrize(("cls", "msg_cls", "stage"), CASES)
def test_every_field_out_of_range_is_refused_everywhere_naming_it(
    cls: type, msg_cls: type, stage: str
) -> None:
    for f in dataclasses.fields(cls):
        if f.name not in _proto_fields(msg_cls):
            continue
        for value in _outside(f):
            if f.metadata.get("flag", True):
                parser = argparse.ArgumentParser()
                add_arguments(parser, cls)
                try:
                    args = parser.parse_args([flag_name(f.name), str(value)])
                except SystemExit:
                    args = None  # argparse refuses a value outside choices
                if args is not None:
                    with pytest.raises(InvalidArgument) as cli_err:
                        from_args(cls, args)
                    assert cli_err.value.field == f"options.{f.name}"
            msg = msg_cls(**{f.name: value})
            if (stage, f.name, value) in PROTO_DEFAULTS:
                continue
            with pytest.raises(InvalidArgument) as proto_err:
                cls.from_proto(msg).validate()
            assert proto_err.value.field == f"options.{f.name}"
            spec = jobs_pb2.SwapJobSpec()
            getattr(spec.options, stage).CopyFrom(msg)
            with pytest.raises(InvalidArgument) as submit_err:
                _submit_check(spec)
            assert submit_err.value.field == f"spec.options.{stage}.{f.name}", submit_err.value


def _submit_check(spec: jobs_pb2.SwapJobSpec) -> None:
    """The option part of the job API's submit check (validate_spec calls it after the inputs)."""
    check_options(spec.options)


def test_zero_can_be_asked_for_over_grpc() -> None:
    """mask_erode / mask_blur are optional in the proto: an explicit 0 is 0, an unset field the default."""
    assert ConvertOptions.from_proto(converter_pb2.ConvertOptions(mask_erode=0)).mask_erode == 0
    assert ConvertOptions.from_proto(converter_pb2.ConvertOptions(mask_blur=0)).mask_blur == 0
    assert ConvertOptions.from_proto(converter_pb2.ConvertOptions()).mask_erode == ConvertOptions().mask_erode
    sent = ConvertOptions(mask_erode=0).to_proto(converter_pb2.ConvertOptions)
    assert sent.HasField("mask_erode")
    assert (
        ConvertOptions.from_proto(
            converter_pb2.ConvertOptions.FromString(sent.SerializeToString())
        ).mask_erode
        == 0
    )


def test_job_api_offers_only_presets_that_exist() -> None:
    torch = pytest.importorskip("torch")
    del torch
    from faceswap.model.network import PRESETS

    assert tuple(PRESETS) == PRESET_NAMES == known_presets()
    assert "tiny" not in known_presets()


def test_default_training_steps_are_the_same_everywhere() -> None:
    from services.cli import build_parser

    parser = build_parser()
    train_args = parser.parse_args(["train", "-A", "a", "-B", "b", "-m", "m"])
    assert train_args.steps == DEFAULT_STEPS
    assert TrainOptions().steps == DEFAULT_STEPS
    assert TrainOptions.from_proto(trainer_pb2.TrainOptions()).steps == DEFAULT_STEPS
    swap_args = parser.parse_args(["swap", "a.mp4", "--faces-b", "b", "-o", "o.mp4"])
    # the swap command sends 0, which the trainer maps onto the same default
    assert TrainOptions.from_proto(trainer_pb2.TrainOptions(steps=swap_args.steps)).steps == DEFAULT_STEPS


def test_convert_cli_flags_come_from_the_definition() -> None:
    from services.cli import build_parser

    args = build_parser().parse_args(["convert", "-i", "x", "-o", "y", "--mask-erode", "0"])
    assert args.mask_erode == 0
    with pytest.raises(InvalidArgument) as err:
        from_args(ConvertOptions, argparse.Namespace(**{**vars(args), "mask_erode": 65}))
    assert err.value.field == "options.mask_erode"


def test_detect_zero_can_be_asked_for_over_grpc() -> None:
    """upsample / recover_frames are optional in the proto: 0 is 0 (no upsampling, no recovery)."""
    for name, default in (("upsample", 1), ("recover_frames", 5)):
        assert getattr(DetectOptions.from_proto(detector_pb2.DetectOptions()), name) == default
        sent = DetectOptions(**{name: 0}).to_proto(detector_pb2.DetectOptions)
        assert sent.HasField(name)
        back = DetectOptions.from_proto(detector_pb2.DetectOptions.FromString(sent.SerializeToString()))
        assert getattr(back, name) == 0


def test_detect_options_set_by_the_job_are_refused_at_submit() -> None:
    spec = jobs_pb2.SwapJobSpec()
    spec.options.detect.faces_prefix = "elsewhere/"
    with pytest.raises(InvalidArgument) as err:
        check_options(spec.options)
    assert err.value.field == "spec.options.detect.reference_photos"
    spec = jobs_pb2.SwapJobSpec()
    spec.options.detect.detect_max_side = 32  # neither 0 nor >= 64: not a range edge
    with pytest.raises(InvalidArgument) as err:
        check_options(spec.options)
    assert err.value.field == "spec.options.detect.detect_max_side"


def test_extract_cli_flags_come_from_the_definition() -> None:
    from services.cli import build_parser

    args = build_parser().parse_args(["extract", "-i", "x", "-o", "y", "--upsample", "0", "--dedupe", "3"])
    opts = from_args(DetectOptions, args)
    assert (opts.upsample, opts.dedupe_distance, opts.detect_max_side) == (0, 3, 640)
    with pytest.raises(InvalidArgument) as err:
        from_args(DetectOptions, argparse.Namespace(**{**vars(args), "upsample": 5}))
    assert err.value.field == "options.upsample"


@pytest.mark.parametrize(("cls", "stage"), [(c[0], c[2]) for c in CASES if c[2] in ("train", "convert")])
def test_kubernetes_worker_refuses_every_out_of_range_value_naming_it(cls: type, stage: str) -> None:
    """The Kubernetes worker (train, convert) builds its options with the same definition."""
    from services.k8s_worker import build_options

    walked = 0
    for f in dataclasses.fields(cls):
        for value in _outside(f):
            with pytest.raises(InvalidArgument) as err:
                build_options(cls, {f.name: value})
            assert err.value.field == f"options.{f.name}", (stage, f.name, value)
            walked += 1
    assert walked >= 10
