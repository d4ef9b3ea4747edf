"""``padlc serve`` / ``python -m padl_runtime serve``: the HTTP contract, dynamic batching, and
behaviour under bad input and load. Every server runs in a fresh process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch

import padl_runtime
import padlc
from tests.e2e.serve_code import ITEMS, make_pipeline
from tests.e2e.serving import Running, all_gone, children, serving, start

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("serve") / "model.padl"
    return padlc.build(make_pipeline(), target, inputs=ITEMS[:4], backend="export").path


@pytest.fixture(scope="module")
def expected(artifact: Path) -> list[dict]:
    pipeline = padl_runtime.load(artifact)
    return [_json(pipeline.infer_apply(item)) for item in ITEMS]


@pytest.fixture(scope="module")
def server(artifact: Path):
    command = (sys.executable, "-m", "padl_runtime", "serve")
    with serving(artifact, "--max-wait-ms", "5", command=command) as running:
        yield running


def _json(output: dict) -> dict:
    return {"label": output["label"], "scores": output["scores"].tolist()}


def _same(got: dict, want: dict) -> bool:
    """Labels exactly; scores to 1e-5 (a batched forward may add up in another order)."""
    return got["label"] == want["label"] and torch.allclose(
        torch.tensor(got["scores"]), torch.tensor(want["scores"]), atol=1e-5
    )


def _post(server: Running, path: str, body: object) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, content=content, timeout=30)


# -- POST /predict -----------------------------------------------------------------------------
def test_predict_one_input_gives_infer_apply_output(server, expected) -> None:
    response = _post(server, "/predict", {"input": ITEMS[3]})
    assert response.status_code == 200
    assert _same(response.json()["output"], expected[3])


def test_predict_many_inputs_gives_outputs_in_order(server, expected) -> None:
    response = _post(server, "/predict", {"inputs": ITEMS[:10]})
    assert response.status_code == 200
    outputs = response.json()["outputs"]
    assert len(outputs) == 10 and all(map(_same, outputs, expected[:10]))


def test_concurrent_requests_each_get_their_own_outputs(server, expected) -> None:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post("/predict", json={"input": ITEMS[i % len(ITEMS)]})
                    for i in range(200)
                )
            )

    responses = asyncio.run(run())
    for i, response in enumerate(responses):
        assert response.status_code == 200
        assert _same(response.json()["output"], expected[i % len(ITEMS)]), i
    metrics = httpx.get(server.url + "/metrics").text
    batches = _sample(metrics, "padl_batch_size_count")
    items = _sample(metrics, "padl_batch_size_sum")
    assert items / batches > 1  # requests were batched together


def _sample(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(name + labels + " ") or line.startswith(
            name + "{" + labels.strip("{}") + "}"
        ):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{labels} is not in the metrics:\n{text}")


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"items": [1]}', "'items'"),
        (b'{"inputs": []}', "non-empty list"),
        (b'{"inputs": 3}', "non-empty list"),
    ],
)
def test_malformed_request_is_400_naming_the_problem(server, body, names) -> None:
    response = _post(server, "/predict", body)
    assert response.status_code == 400
    assert names in response.json()["error"]


def test_failing_item_is_422_naming_transform_and_input_and_others_succeed(
    server, expected
) -> None:
    bodies = [{"input": ITEMS[i]} for i in range(8)]
    bodies[3] = {"inputs": [ITEMS[0], [999, 0, 0, 0]]}
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda b: _post(server, "/predict", b), bodies))
    failed = responses[3]
    assert failed.status_code == 422
    error = failed.json()
    assert "input 1" in error["error"] and "parse" in error["error"]
    assert error["errors"] == [
        {"index": 1, "stage": "preprocess", "step": "parse", "location": error["errors"][0]["location"],
         "type": "ValueError", "message": "this item asks to fail"}
    ]  # fmt: skip
    for i, response in enumerate(responses):
        if i != 3:
            assert response.status_code == 200 and _same(response.json()["output"], expected[i])


def test_unknown_path_is_404_in_json(server) -> None:
    response = httpx.get(server.url + "/nothing")
    assert response.status_code == 404 and "/nothing" in response.json()["error"]


# -- the Open Inference Protocol -------------------------------------------------------------------
def test_v2_health_endpoints_answer(server) -> None:
    assert httpx.get(server.url + "/v2/health/live").status_code == 200
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200
    assert httpx.get(server.url + "/v2/models/model/ready").status_code == 200


def test_v2_metadata_names_the_model(server) -> None:
    metadata = httpx.get(server.url + "/v2/models/model").json()
    assert metadata["name"] == "model" and metadata["platform"] == "padl_export"
    assert metadata["parameters"]["forward_inputs"][0]["shape"] == ["batch", 4]


def test_v2_infer_with_a_tensor_input_gives_one_tensor_per_output_key(server, expected) -> None:
    body = {"id": "r1", "inputs": [
        {"name": "x", "shape": [3, 4], "datatype": "FP32", "data": [v for item in ITEMS[:3] for v in item]}
    ]}  # fmt: skip
    response = _post(server, "/v2/models/model/infer", body)
    assert response.status_code == 200
    reply = response.json()
    assert reply["model_name"] == "model" and reply["id"] == "r1"
    labels, scores = reply["outputs"]
    assert labels == {
        "name": "label",
        "datatype": "INT64",
        "shape": [3],
        "data": [e["label"] for e in expected[:3]],
    }
    assert scores["name"] == "scores" and scores["datatype"] == "FP32" and scores["shape"] == [3, 3]
    want = torch.tensor([e["scores"] for e in expected[:3]])
    assert torch.allclose(torch.tensor(scores["data"]).reshape(3, 3), want, atol=1e-5)


def test_v2_infer_with_bytes_input_maps_strings_to_items(server, expected) -> None:
    strings = [",".join(str(v) for v in item) for item in ITEMS[:2]]
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": strings}],
            "outputs": [{"name": "label"}]}  # fmt: skip
    reply = _post(server, "/v2/models/model/infer", body).json()
    assert reply["outputs"] == [
        {
            "name": "label",
            "datatype": "INT64",
            "shape": [2],
            "data": [e["label"] for e in expected[:2]],
        }
    ]


def test_v2_infer_with_a_wrong_shape_is_400(server) -> None:
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3]}]}
    response = _post(server, "/v2/models/model/infer", body)
    assert response.status_code == 400
    assert "shape [2, 4] holds 8 values, but data has 3" in response.json()["error"]


def test_v2_infer_for_another_model_is_404(server) -> None:
    response = _post(server, "/v2/models/other/infer", {"inputs": []})
    assert response.status_code == 404 and "'model'" in response.json()["error"]


# -- GET /metrics --------------------------------------------------------------------------------
def test_metrics_count_requests_errors_batches_and_stage_latency(server) -> None:
    _post(server, "/predict", {"input": ITEMS[0]})
    _post(server, "/predict", b"{bad")
    text = httpx.get(server.url + "/metrics").text
    assert _sample(text, "padl_requests_total", '{endpoint="predict",status="200"}') >= 1
    assert _sample(text, "padl_requests_total", '{endpoint="predict",status="400"}') >= 1
    assert _sample(text, "padl_queue_depth") == 0
    for stage in ("queue", "preprocess", "forward", "postprocess"):
        assert _sample(text, "padl_stage_seconds_count", f'{{stage="{stage}"}}') >= 1
    assert "padl_request_seconds_bucket" in text and "padl_item_errors_total" in text


# -- load: full queue, timeout, drain ---------------------------------------------------------------
def _slow(seconds: float) -> list[float]:
    return [-seconds, 0.0, 0.0, 0.0]


def test_full_queue_is_503_with_retry_after(artifact) -> None:
    with (
        serving(artifact, "--max-queue", "2", "--max-batch", "1") as server,
        ThreadPoolExecutor(8) as pool,
    ):
        slow = pool.submit(_post, server, "/predict", {"input": _slow(1.5)})
        time.sleep(0.3)  # the slow item is in the forward thread; the next two fill the queue
        queued = [pool.submit(_post, server, "/predict", {"input": ITEMS[0]}) for _ in range(2)]
        time.sleep(0.3)
        refused = _post(server, "/predict", {"input": ITEMS[1]})
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert "queue is full" in refused.json()["error"]
        assert slow.result().status_code == 200
        assert all(f.result().status_code == 200 for f in queued)


def test_request_past_timeout_is_504_and_the_server_goes_on(artifact) -> None:
    with serving(artifact, "--timeout", "0.5") as server:
        response = _post(server, "/predict", {"input": _slow(1.5)})
        assert response.status_code == 504 and "timeout (0.5 s)" in response.json()["error"]
        time.sleep(1.2)  # the slow item still holds the forward thread until then
        assert _post(server, "/predict", {"input": ITEMS[0]}).status_code == 200


def test_sigterm_finishes_requests_in_flight_and_exits_0(artifact) -> None:
    server = start(artifact)
    with ThreadPoolExecutor(4) as pool:
        in_flight = [
            pool.submit(_post, server, "/predict", {"input": _slow(0.5)}) for _ in range(3)
        ]
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        assert all(f.result().status_code == 200 for f in in_flight)
    code, log = server.stop()
    assert code == 0, log
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/v2/health/live")


# -- worker processes ------------------------------------------------------------------------------
def test_workers_preprocess_and_postprocess_in_processes_that_end_with_the_server(
    artifact, expected
) -> None:
    server = start(artifact, "--workers", "2")
    try:
        workers = children(server.process.pid)
        assert len(workers) >= 2
        with ThreadPoolExecutor(8) as pool:
            responses = list(
                pool.map(lambda i: _post(server, "/predict", {"input": ITEMS[i]}), range(16))
            )
        assert all(_same(r.json()["output"], expected[i]) for i, r in enumerate(responses))
        failed = _post(server, "/predict", {"input": [999, 0, 0, 0]})
        assert failed.status_code == 422 and failed.json()["errors"][0]["step"] == "parse"
    finally:
        code, log = server.stop()
    assert code == 0, log
    assert all_gone(workers)


def test_a_worker_that_dies_fails_its_items_and_is_replaced(artifact, expected) -> None:
    with serving(artifact, "--workers", "1") as server:
        before = set(children(server.process.pid))  # the worker (and multiprocessing's tracker)
        failed = _post(server, "/predict", {"input": [998, 0, 0, 0]})
        assert failed.status_code == 422
        assert failed.json()["errors"][0]["type"] == "WorkerExited"
        assert "exited (code 3)" in failed.json()["error"]
        answer = _post(server, "/predict", {"input": ITEMS[1]})
        assert answer.status_code == 200 and _same(answer.json()["output"], expected[1])
        after = set(children(server.process.pid))
        assert len(before - after) == 1 and len(after - before) == 1  # one worker replaced


def test_workers_exit_when_the_server_is_killed(artifact) -> None:
    server = start(artifact, "--workers", "1")
    workers = children(server.process.pid)
    assert workers
    server.process.send_signal(signal.SIGKILL)
    server.process.communicate()
    assert all_gone(workers)


def test_a_saved_artifact_is_refused_with_a_clear_message(tmp_path) -> None:
    saved = padlc.save(make_pipeline(), tmp_path / "saved.padl")
    result = subprocess.run(
        [sys.executable, "-m", "padlc", "serve", str(saved)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "padlc serve: ArtifactError" in result.stderr and "padlc build" in result.stderr


def test_an_untrusted_artifact_is_refused_unless_trust_code_is_given(artifact, tmp_path) -> None:
    elsewhere = {"PADL_TRUST_STORE": str(tmp_path / "empty-store"), "PADL_TRUSTED_KEYS": ""}
    result = subprocess.run(
        [sys.executable, "-m", "padlc", "serve", str(artifact)],
        capture_output=True,
        text=True,
        env={**os.environ, **elsewhere},
    )
    assert result.returncode == 1
    assert "UntrustedArtifactError" in result.stderr
    with serving(artifact, "--trust-code", env=elsewhere) as server:
        assert _post(server, "/predict", {"input": ITEMS[0]}).status_code == 200
