"""FACESWAP_RUNNER=kubernetes: a job's options map onto the worker Jobs' manifests (no cluster here)."""

from __future__ import annotations

import json

from services.common.pb.faceswap.v1 import jobs_pb2
from services.k8s_worker import build_options
from services.orchestrator import k8s_jobs
from services.orchestrator.k8s_runner import convert_manifest, train_manifest

JOB_ID = "0123456789abcdef0123456789abcdef"


def _options(manifest) -> dict:
    args = k8s_jobs.to_manifest(manifest)["spec"]["template"]["spec"]["containers"][0]["args"]
    return json.loads(args[args.index("--options") + 1])


def test_train_and_convert_manifests_carry_the_job_options() -> None:
    from faceswap.options.convert import ConvertOptions
    from services.trainer.loop import TrainOptions

    spec = jobs_pb2.SwapJobSpec()
    spec.options.train.preset, spec.options.train.steps, spec.options.train.max_seconds = "lite", 900, 60
    spec.options.convert.blend, spec.options.convert.color = "seamless", "reinhard"
    spec.options.convert.method = "autoencoder"
    settings = k8s_jobs.JobSettings()

    train = train_manifest(JOB_ID, spec, "faceswap", settings)
    args = k8s_jobs.to_manifest(train)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model") + 1] == f"jobs/{JOB_ID}/model"
    assert args[args.index("--faces-b") + 1] == f"jobs/{JOB_ID}/faces_b"
    opts = build_options(TrainOptions, _options(train))  # what the worker pod will do
    assert (opts.preset, opts.steps, opts.max_seconds) == ("lite", 900, 60)

    convert = convert_manifest(
        JOB_ID, spec, f"jobs/{JOB_ID}/faces_a/alignments.json", "m/x", 1000, settings, 250
    )
    body = k8s_jobs.to_manifest(convert)
    assert body["spec"]["completions"] == 4 and body["spec"]["completionMode"] == "Indexed"
    copts = build_options(ConvertOptions, _options(convert))
    assert (copts.blend, copts.color) == ("seamless", "reinhard")
