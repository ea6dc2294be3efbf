"""Workdirs in a bucket (``--workdir=gs://bucket/run``), against a real GCS JSON API served here:
gcp-storage-emulator on 127.0.0.1, in memory, started by the test.

A 2-process jax.distributed run (gloo, 2 x 2 CPU devices) on gs://, SIGKILLed after a checkpoint
and restarted, ends with parameters bitwise equal to an uninterrupted run (on local disk); everything it wrote is
in the bucket and nothing is left on the local disk (its cwd and TMPDIR stay empty); the export
CLI reads the bucket, and ``load_model("gs://...")`` embeds like that export loaded locally.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).parent.parent
JOBS = pathlib.Path(__file__).parent / "jobs"
BUCKET = "jina-jax-test"
STEPS = 4  # checkpoints at 2 and 4 (tests/jobs/tiny_train.py: every 2, keep 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_emulator(port: int):
    """gcp-storage-emulator's server in this process, with two speed-ups that change nothing a
    client sees: in memory it still serialises every object's metadata to a JSON file on every
    write (quadratic in the object count; a checkpoint is hundreds of objects), and as an
    HTTP/1.0 server it never answers "Expect: 100-continue", which curl (under TensorStore)
    sends with bodies over 1 MB, then waits a second before sending the body anyway."""
    from gcp_storage_emulator import server as emulator

    class Handler(emulator.RequestHandler):
        def parse_request(self):
            if not super().parse_request():
                return False
            if self.headers.get("Expect", "").lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return True

    original, emulator.RequestHandler = emulator.RequestHandler, Handler
    try:
        server = emulator.create_server("127.0.0.1", port, in_memory=True)
        server._storage._write_config_to_file = lambda: None
        server.start()  # the server thread has bound the handler class once this returns
    finally:
        emulator.RequestHandler = original
    return server


@pytest.fixture(scope="module")
def gcs():
    """The emulator's endpoint, with the test bucket created (soft delete off, so objects that
    orbax deletes are gone, as on a bucket configured so)."""
    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)  # a line per request
    port = _free_port()
    server = _start_emulator(port)
    try:
        url = f"http://127.0.0.1:{port}"
        _api(url, "POST", "/storage/v1/b", {"name": BUCKET})
        _api(
            url,
            "PATCH",
            f"/storage/v1/b/{BUCKET}",
            {"softDeletePolicy": {"retentionDurationSeconds": "0"}},
        )
        yield url
    finally:
        server.stop()  # its thread is not a daemon: a server left running keeps pytest alive
        logging.getLogger("gcp_storage_emulator").setLevel(logging.NOTSET)


def _api(url: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def _objects(url: str, prefix: str) -> list[str]:
    query = urllib.parse.urlencode({"prefix": prefix})
    return sorted(
        item["name"]
        for item in _api(url, "GET", f"/storage/v1/b/{BUCKET}/o?{query}").get("items", [])
    )


def _exists(url: str, name: str) -> bool:
    try:
        _api(url, "GET", f"/storage/v1/b/{BUCKET}/o/{urllib.parse.quote(name, safe='')}")
        return True
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        raise


def _read(url: str, name: str) -> str:
    path = f"/download/storage/v1/b/{BUCKET}/o/{urllib.parse.quote(name, safe='')}?alt=media"
    with urllib.request.urlopen(url + path, timeout=30) as response:
        return response.read().decode()


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    from jina_jax.data.stdlib_text import stdlib_sentences

    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    with open(path, "w") as f:
        for sentence in stdlib_sentences(300):
            f.write(json.dumps([" ".join(sentence.split()[:4]), sentence]) + "\n")
    return path


class Local:
    """The local places a job could leave files in: its cwd and its TMPDIR (both start empty)."""

    def __init__(self, root: pathlib.Path):
        self.cwd, self.tmp, self.logs = root / "cwd", root / "tmp", root / "logs"
        for folder in (self.cwd, self.tmp, self.logs):
            folder.mkdir()

    def leftovers(self) -> list[str]:
        return [str(p) for folder in (self.cwd, self.tmp) for p in folder.rglob("*")]


def _env(url: str, local: Local, devices: int = 2) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XLA_FLAGS", "GOOGLE_APPLICATION_CREDENTIALS")
    }
    env.update(
        # gcsfs and google-cloud-storage (tensorboardX) read this one; TensorStore (orbax's
        # array I/O) its own, and a fixed token instead of OAuth.
        STORAGE_EMULATOR_HOST=url,
        TENSORSTORE_GCS_HTTP_URL=url,
        GOOGLE_AUTH_TOKEN_FOR_TESTING="test-token",
        # No credential lookup leaves the machine: no metadata-server probe (and were there one,
        # a closed local port), no gcloud credentials of this machine, and no gcsfs bucket-type
        # lookup (the Storage Control API, which the emulator does not serve).
        NO_GCE_CHECK="true",
        GCE_METADATA_HOST="127.0.0.1:1",
        GCE_METADATA_IP="127.0.0.1:1",
        CLOUDSDK_CONFIG=str(local.logs / "gcloud"),
        GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false",
        TMPDIR=str(local.tmp),
        PYTHONPATH=str(ROOT),
        JAX_PLATFORMS="cpu",
        JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    )
    return env


@pytest.fixture
def started():
    """The jobs a test starts; any still running when it ends (a failed assertion) are killed."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _launch(
    name, workdir: str, pairs_file, url: str, local: Local, started
) -> list[subprocess.Popen]:
    """The tiny pairs run as 2 jax.distributed processes x 2 CPU devices."""
    port = _free_port()
    procs = []
    for i in range(2):
        cmd = [
            sys.executable,
            str(JOBS / "tiny_train.py"),
            workdir,
            str(pairs_file),
            str(STEPS),
            "distributed.enabled=True",
            f"distributed.coordinator_address=127.0.0.1:{port}",
            "distributed.num_processes=2",
            f"distributed.process_id={i}",
        ]
        log = open(local.logs / f"{name}.{i}.log", "w")
        procs.append(
            subprocess.Popen(
                cmd, env=_env(url, local), cwd=local.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        )
        log.close()
    started.extend(procs)
    return procs


def _wait(procs, local: Local, name: str, timeout: float = 400) -> None:
    """Waits for every process; a failure shows each process's exit code and log tail (the
    process that failed first is often not the one whose exit code shows it)."""
    codes = [proc.wait(timeout=timeout) for proc in procs]
    if any(codes):
        tails = [
            f"--- {name} process {i} exited {code}:\n"
            + (local.logs / f"{name}.{i}.log").read_text()[-3000:]
            for i, code in enumerate(codes)
        ]
        pytest.fail("\n".join(tails), pytrace=False)


@pytest.mark.slow
def test_two_process_run_on_gcs_resumes_bitwise_and_keeps_everything_in_the_bucket(
    gcs, pairs_file, tmp_path, started
):
    local = Local(tmp_path)
    base = f"gs://{BUCKET}"

    # An uninterrupted run (on local disk: the reference, with its own cwd and TMPDIR) and one
    # on gs:// SIGKILLed (both processes) once checkpoint 2 is committed.
    (tmp_path / "reference").mkdir()
    reference = Local(tmp_path / "reference")
    straight_dir = tmp_path / "reference" / "straight"
    straight = _launch("straight", str(straight_dir), pairs_file, gcs, reference, started)
    killed = _launch("killed", f"{base}/killed", pairs_file, gcs, local, started)
    marker = "killed/pairs/checkpoints/2/commit_success.txt"
    deadline = time.time() + 300
    while not _exists(gcs, marker) and all(p.poll() is None for p in killed):
        assert time.time() < deadline, "no checkpoint 2 in time"
        time.sleep(0.05)
    for i, proc in enumerate(killed):
        log = (local.logs / f"killed.{i}.log").read_text()
        assert proc.poll() is None, f"process {i} ended before the kill:\n{log[-4000:]}"
    for proc in killed:
        proc.send_signal(signal.SIGKILL)
    assert [proc.wait() for proc in killed] == [-signal.SIGKILL] * 2
    assert not _exists(gcs, "killed/pairs/DONE")
    restarted = _launch("restarted", f"{base}/killed", pairs_file, gcs, local, started)
    _wait(straight, reference, "straight")
    _wait(restarted, local, "restarted")
    assert "resuming from step" in (local.logs / "restarted.0.log").read_text()

    # Everything the run wrote is in the bucket, and only that; nothing local.
    names = _objects(gcs, "killed/")
    stage = [n.removeprefix("killed/pairs/") for n in names if n.startswith("killed/pairs/")]
    assert set(names) - {f"killed/pairs/{n}" for n in stage} == {
        "killed/config.json",
        "killed/jina_jax_workdir.json",  # the workdir marker (jina_jax.storage.MARKER_FILE)
    }
    assert {n.split("/")[0] for n in stage} == {
        "DONE",
        "model.json",
        "tokenizer",
        "checkpoints",
        "metrics.jsonl",
        "tensorboard",
    }, stage
    assert {"tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"} <= set(stage)
    steps = {n.split("/")[1] for n in stage if n.startswith("checkpoints/")}
    assert steps == {"2", "4"}, steps
    assert f"checkpoints/{STEPS}/commit_success.txt" in stage
    assert any(n.startswith("tensorboard/events.out.tfevents.") for n in stage)
    done = json.loads(_read(gcs, "killed/pairs/DONE"))
    assert done["steps"] == STEPS and done["resumed_from"] is not None
    logged = [
        json.loads(line)["step"] for line in _read(gcs, "killed/pairs/metrics.jsonl").splitlines()
    ]
    assert 2 in logged and logged[-1] == STEPS  # the killed run's lines kept, the rest appended
    assert local.leftovers() == []

    # The export CLI reads the bucket; load_model("gs://...") embeds like the export, loaded
    # locally; the resumed run's parameters are bitwise those of the uninterrupted one.
    export_dir = tmp_path / "export"
    check = subprocess.run(
        [
            sys.executable,
            str(JOBS / "gcs_check.py"),
            str(straight_dir / "pairs"),
            f"{base}/killed/pairs",
            str(export_dir),
            f"{base}/exported",
        ],
        env=_env(gcs, local, devices=1),
        cwd=local.cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stderr[-4000:]
    assert (export_dir / "config.json").exists() and (export_dir / "model.safetensors").exists()
    result = json.loads(check.stdout.strip().splitlines()[-1])
    assert result["steps"] == [STEPS, STEPS]
    assert result["bitwise_equal"], result
    assert result["max_abs_diff"] <= 1e-5, result
    # save_hf to gs:// (assembled locally, uploaded, config.json last) and back.
    assert result["reexport_max_abs_diff"] == 0.0, result
    assert {n.removeprefix("exported/") for n in _objects(gcs, "exported/")} == {
        str(p.relative_to(export_dir)) for p in export_dir.rglob("*") if p.is_file()
    }
    assert local.leftovers() == []
