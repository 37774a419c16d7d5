"""Detection reports progress while it runs: the detector passes
``report_progress`` to ``extract_face_set``, so a watcher of the ExtractFaceSet operation sees frames
done before the operation ends, not 0/N then N/N."""

from __future__ import annotations

from pathlib import Path

import grpc

from faceswap.storage import LocalStore
from services.common.pb.faceswap.v1 import common_pb2, common_pb2_grpc, detector_pb2
from services.common.server import start_server


def test_detect_reports_progress_before_the_stage_ends(tmp_path: Path, short_clip: Path) -> None:
    from faceswap.media.store import extract_frames
    from services.detector.server import build_spec

    store = LocalStore(tmp_path / "storage", "faceswap")
    store.put_file("jobs/j/input/video.mp4", short_clip)
    frames = extract_frames(store, "jobs/j/input/video.mp4", "jobs/j/frames").frame_count
    server = start_server(build_spec(store), port=0, metrics_port=0)
    try:
        ops = common_pb2_grpc.OperationServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        request = detector_pb2.ExtractFaceSetRequest(
            source_prefix="jobs/j/frames", output_prefix="jobs/j/faces_a"
        )
        op = ops.StartOperation(
            common_pb2.StartOperationRequest(
                name="jobs/j/op/detect_a",
                method="/faceswap.v1.DetectorService/ExtractFaceSet",
                request=request.SerializeToString(),
            ),
            timeout=30,
        ).operation
        seen = []
        for resp in ops.WatchOperation(common_pb2.WatchOperationRequest(name=op.name), timeout=120):
            seen.append((resp.operation.done_units, resp.operation.done))
            if resp.operation.done:
                assert not resp.operation.error.code, resp.operation.error
                break
    finally:
        server.stop(1)
    during = [done for done, finished in seen if not finished and 0 < done < frames]
    assert during, f"no progress before the end over {frames} frames: {seen}"
    assert during == sorted(during)
