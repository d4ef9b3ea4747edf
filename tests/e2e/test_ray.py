"""``padl_runtime.ray`` on a real local Ray: Ray Data ``predict`` and the Ray Serve deployment.

One Ray instance for the module, started here (``ray.init(num_cpus=2)`` in a temporary directory,
with a token of its own) and stopped at the end, where every process it started must be gone.
Its workers see an empty trust store: the actors load the artifact only through the trust this
process established (the manifest digest they are given), as they would on other machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
import torch

with warnings.catch_warnings():
    # Ray Serve's own settings models use pydantic features that pydantic deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    from ray import serve

import padl_runtime
import padl_runtime.ray
import padlc
from tests.e2e.serve_code import ITEMS, make_pipeline
from tests.e2e.serving import alive, children, free_port

pytestmark = [
    pytest.mark.slow,
    # Ray's own modules warn about Ray's own deprecated settings; warnings from padl stay errors
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
]

ROWS = 3000


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # A short directory of its own (Ray's socket paths must stay short), never the repository.
    temp = tempfile.mkdtemp(prefix="padl-ray-")
    actor_store = tmp_path_factory.mktemp("actor-trust-store")
    # Processes this one started before (a multiprocessing resource tracker, which lives as long
    # as this process) are not Ray's.
    before = set(_descendants(os.getpid()))
    started: list[int] = []
    try:
        with pytest.MonkeyPatch.context() as env:
            env.delenv("RAY_ADDRESS", raising=False)  # never join a cluster that happens to run
            # token authentication (Ray's default) with a token of its own: ~/.ray is not written
            env.delenv("RAY_AUTH_MODE", raising=False)
            env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
            try:
                ray.init(
                    address="local",
                    num_cpus=2,
                    include_dashboard=False,
                    log_to_driver=False,
                    _temp_dir=temp,
                    runtime_env={"env_vars": {"PADL_TRUST_STORE": str(actor_store)}},
                )
                ray.data.DataContext.get_current().enable_progress_bars = False
                yield
            finally:
                started = [p for p in _descendants(os.getpid()) if p not in before]
                with contextlib.suppress(Exception):
                    serve.shutdown()
                ray.shutdown()
    finally:
        left = [pid for pid in started if not _gone_within(pid, 30)]
        shutil.rmtree(temp, ignore_errors=True)
    assert not left, f"Ray processes still running after ray.shutdown(): {_commands(left)}"
    assert not list(Path(actor_store).iterdir())  # the actors trusted nothing on their own


def _commands(pids: list[int]) -> dict[int, str]:
    """Each process's command line, for the failure message."""
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return found


def _gone_within(pid: int, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if not alive(pid):
            return True
        with contextlib.suppress(OSError):
            os.waitpid(pid, os.WNOHANG)  # reap what this process started
        time.sleep(0.1)
    return not alive(pid)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("ray") / "model.padl"
    return padlc.build(make_pipeline(), target, inputs=ITEMS[:4], backend="export").path


@pytest.fixture(scope="module")
def pipeline(artifact: Path) -> padl_runtime.CompiledPipeline:
    return padl_runtime.load(artifact)


def _rows(count: int) -> list[list[float]]:
    generator = torch.Generator().manual_seed(1)
    return (torch.rand(count, 4, generator=generator) * 5).tolist()


def _close(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """Labels exactly; scores to 1e-6 (a batch of other rows may add up in another order)."""
    return got["label"] == want["label"] and torch.allclose(
        torch.as_tensor(got["scores"]), want["scores"], atol=1e-6
    )


# -- Ray Data ----------------------------------------------------------------------------------------
def test_predict_gives_eval_apply_outputs_and_keeps_the_other_columns(
    local_ray, artifact, pipeline
) -> None:
    items = _rows(ROWS)
    expected = list(pipeline.eval_apply(items, batch_size=256))
    ds = ray.data.from_items([{"id": i, "item": x, "tag": f"t{i}"} for i, x in enumerate(items)])
    rows = padl_runtime.ray.predict(ds, artifact, batch_size=256).take_all()
    assert len(rows) == ROWS
    for row in rows:
        i = row["id"]
        assert row["item"] == items[i] and row["tag"] == f"t{i}"
        assert _close(row["output"], expected[i]), i


def test_predict_output_of_a_row_equals_infer_apply(local_ray, artifact, pipeline) -> None:
    ds = ray.data.from_items([{"item": x} for x in ITEMS[:5]])
    rows = padl_runtime.ray.predict(ds, artifact, batch_size=2).take_all()
    by_item = {tuple(r["item"]): r["output"] for r in rows}
    for item in ITEMS[:5]:
        assert _close(by_item[tuple(item)], pipeline.infer_apply(item))


def test_predict_reads_another_input_column_and_writes_another_output_column(
    local_ray, artifact, pipeline
) -> None:
    ds = ray.data.from_items([{"text": ",".join(map(str, x))} for x in ITEMS[:4]])
    rows = padl_runtime.ray.predict(
        ds, artifact, input_column="text", output_column="prediction"
    ).take_all()
    assert {r["text"]: r["prediction"]["label"] for r in rows} == {
        ",".join(map(str, x)): pipeline.infer_apply(x)["label"] for x in ITEMS[:4]
    }


def test_a_failing_row_stops_predict_naming_its_input_and_the_transform(
    local_ray, artifact
) -> None:
    items = [*ITEMS[:10], [999.0, 1.0, 2.0, 3.0], *ITEMS[10:20]]
    ds = ray.data.from_items([{"item": x} for x in items])
    with pytest.raises(ray.exceptions.RayError) as raised:
        padl_runtime.ray.predict(ds, artifact).materialize()
    message = str(raised.value)
    assert "RowError: The row with item=[999.0, 1.0, 2.0, 3.0] failed" in message
    assert "the preprocess step parse (stages.py:" in message
    assert "raised ValueError: this item asks to fail" in message
    assert "error_column=" in message


def test_with_an_error_column_failing_rows_are_recorded_and_the_others_go_on(
    local_ray, artifact, pipeline
) -> None:
    items = [*ITEMS[:6], [999.0, 0.0, 0.0, 0.0], *ITEMS[6:12]]
    ds = ray.data.from_items([{"id": i, "item": x} for i, x in enumerate(items)])
    rows = padl_runtime.ray.predict(ds, artifact, error_column="error").take_all()
    failed = [r for r in rows if r["error"] is not None]
    assert [r["id"] for r in failed] == [6] and failed[0]["output"] is None
    assert failed[0]["error"].startswith("the preprocess step parse (stages.py:")
    assert failed[0]["error"].endswith("raised ValueError: this item asks to fail")
    for row in rows:
        if row["id"] != 6:
            assert _close(row["output"], pipeline.infer_apply(items[row["id"]]))


def test_predict_refuses_an_untrusted_artifact_before_starting_any_actor(
    local_ray, artifact, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("PADL_TRUST_STORE", str(tmp_path / "empty-store"))
    ds = ray.data.from_items([{"item": x} for x in ITEMS[:3]])
    with pytest.raises(padl_runtime.UntrustedArtifactError, match="trust_code=True"):
        padl_runtime.ray.predict(ds, artifact)
    rows = padl_runtime.ray.predict(ds, artifact, trust_code=True).take_all()
    assert len(rows) == 3


def test_predict_names_a_missing_input_column(local_ray, artifact) -> None:
    ds = ray.data.from_items([{"x": item} for item in ITEMS[:3]])
    with pytest.raises(ray.exceptions.RayError, match=r"has no column 'item'.*'x'"):
        padl_runtime.ray.predict(ds, artifact).materialize()


# -- Ray Serve -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(local_ray, artifact) -> Iterator[str]:
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(padl_runtime.ray.deployment(artifact), name="padl", route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.delete("padl")


def _json(output: dict[str, Any]) -> dict[str, Any]:
    return {"label": output["label"], "scores": output["scores"].tolist()}


def test_deployment_answers_predict_with_infer_apply_outputs(served, pipeline) -> None:
    one = httpx.post(served + "/predict", json={"input": ITEMS[3]}, timeout=60)
    assert one.status_code == 200
    assert _close(one.json()["output"], pipeline.infer_apply(ITEMS[3]))
    many = httpx.post(served + "/predict", json={"inputs": ITEMS[:8]}, timeout=60)
    assert many.status_code == 200
    outputs = many.json()["outputs"]
    assert len(outputs) == 8
    for got, item in zip(outputs, ITEMS[:8], strict=True):
        assert _close(got, pipeline.infer_apply(item))


def test_deployment_gives_concurrent_requests_their_own_outputs(served, pipeline) -> None:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served, timeout=60) as client:
            return await asyncio.gather(
                *(client.post("/predict", json={"input": ITEMS[i % 40]}) for i in range(120))
            )

    for i, response in enumerate(asyncio.run(run())):
        assert response.status_code == 200
        assert _close(response.json()["output"], pipeline.infer_apply(ITEMS[i % 40])), i


def test_deployment_answers_a_failing_item_with_the_servers_422(served) -> None:
    response = httpx.post(
        served + "/predict", json={"inputs": [ITEMS[0], [999.0, 0.0, 0.0, 0.0]]}, timeout=60
    )
    assert response.status_code == 422
    error = response.json()
    assert error["error"].startswith("The pipeline failed on some inputs: input 1: the preprocess")
    (failure,) = error["errors"]
    assert failure["index"] == 1 and failure["stage"] == "preprocess"
    assert failure["step"] == "parse" and failure["type"] == "ValueError"


def test_deployment_answers_a_bad_body_with_the_servers_400(served) -> None:
    response = httpx.post(served + "/predict", content=b'{"inputs": []}', timeout=60)
    assert response.status_code == 400
    assert '"inputs" must be a non-empty list' in response.json()["error"]


def test_deployment_speaks_the_open_inference_protocol(served, pipeline) -> None:
    assert httpx.get(served + "/v2/health/ready", timeout=60).json() == {"ready": True}
    assert httpx.get(served + "/v2/models/model", timeout=60).json()["platform"] == "padl_export"
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                        "data": [v for item in ITEMS[:2] for v in item]}]}  # fmt: skip
    reply = httpx.post(served + "/v2/models/model/infer", json=body, timeout=60).json()
    assert reply["outputs"][0]["data"] == [pipeline.infer_apply(x)["label"] for x in ITEMS[:2]]
    other = httpx.post(served + "/v2/models/other/infer", json=body, timeout=60)
    assert other.status_code == 404
    assert httpx.get(served + "/nothing", timeout=60).status_code == 404
