"""tpu_setup.sh without Google Cloud: --dry-run output parsed back into argv lists, and a real run
against a stub `gcloud` that records its arguments."""

import json
import os
import pathlib
import re
import shlex
import stat
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "tpu_setup.sh"
LIBTPU_FIND_LINKS = "https://storage.googleapis.com/jax-releases/libtpu_releases.html"


@pytest.fixture
def stub_gcloud(tmp_path):
    """A `gcloud` first on PATH that logs its argv as JSON lines; `describe` answers STUB_STATE."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "gcloud"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['GCLOUD_LOG'], 'a') as log:\n"
        "    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if 'describe' in sys.argv:\n"
        "    state = os.environ.get('STUB_STATE')\n"
        "    if not state:\n"
        "        sys.exit('NOT_FOUND')\n"
        "    print(state)\n"
    )
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return bin_dir, tmp_path / "gcloud.log"


def run_script(args, env_overrides, stub):
    bin_dir, log = stub
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "TPU_NAME",
            "ZONE",
            "ACCELERATOR_TYPE",
            "RUNTIME_VERSION",
            "PROJECT",
            "JAX_VERSION",
            "PYTHON_VERSION",
            "REPO_URL",
            "REPO_REF",
            "CONFIG",
            "WORKDIR",
            "SPOT",
            "PREEMPTIBLE",
        }
    }
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", GCLOUD_LOG=str(log), **env_overrides)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
    )


def logged_calls(log):
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def parse_commands(text):
    """Printed commands -> argv lists. A command may span lines inside quotes; '#' lines are notes."""
    commands, pending = [], ""
    for line in text.splitlines():
        if not pending and (line.startswith("#") or not line.strip()):
            continue
        pending = f"{pending}\n{line}" if pending else line
        try:
            commands.append(shlex.split(pending))
        except ValueError:  # an open quote: the command continues on the next line
            continue
        pending = ""
    assert not pending, f"unterminated command: {pending!r}"
    return commands


def tpu_vm_verb(argv):
    """'create' for `gcloud compute tpus tpu-vm create ...`, None for any other command."""
    return argv[4] if argv[:4] == ["gcloud", "compute", "tpus", "tpu-vm"] else None


def option(argv, name):
    return argv[argv.index(name) + 1]


def assert_valid_bash(script_text):
    subprocess.run(["bash", "-n"], input=script_text, text=True, check=True)


ENV = {
    "TPU_NAME": "test-tpu",
    "ZONE": "us-central2-b",
    "ACCELERATOR_TYPE": "v4-64",
    "PROJECT": "my-project",
    "JAX_VERSION": "0.10.2",
    "CONFIG": "configs/v2_small.py",
    "WORKDIR": "gs://my-bucket/run1",
    "SPOT": "1",
}
LAUNCH = (
    "cd jina_jax && .venv/bin/python -m jina_jax.main "
    "--config=configs/v2_small.py --workdir=gs://my-bucket/run1"
)


def test_bash_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_help_lists_every_variable(stub_gcloud):
    result = run_script(["--help"], {}, stub_gcloud)
    assert result.returncode == 0
    # Every variable the script reads from the environment, found in its own `VAR="${VAR:-` lines.
    variables = re.findall(r'^([A-Z_]+)="\$\{\1:-', SCRIPT.read_text(), flags=re.M)
    assert len(variables) == 13
    for name in [*variables, "PREEMPTIBLE", "SPOT", "REPO_URL", "--dry-run"]:
        assert name in result.stdout
    assert logged_calls(stub_gcloud[1]) == []


def test_dry_run_prints_plan_and_runs_nothing(stub_gcloud):
    result = run_script(["--dry-run"], ENV, stub_gcloud)
    assert result.returncode == 0, result.stderr
    assert logged_calls(stub_gcloud[1]) == []  # gcloud was never called

    commands = parse_commands(result.stdout)
    gcloud = [argv for argv in commands if tpu_vm_verb(argv)]
    assert [tpu_vm_verb(argv) for argv in gcloud] == ["describe", "create", "scp", "ssh", "ssh"]
    _, create, scp, install, launch = gcloud
    target = ["--zone", "us-central2-b", "--project", "my-project"]
    assert create == [
        *"gcloud compute tpus tpu-vm create test-tpu".split(),
        *target,
        *"--accelerator-type v4-64 --version tpu-ubuntu2204-base --spot".split(),
    ]
    # Copy mode (no REPO_URL): the tarball goes to every worker.
    assert "--worker=all" in scp and scp[6] == "test-tpu:jina_jax_source.tgz"
    tar = next(argv for argv in commands if argv[0] == "tar")
    assert tar[2] == scp[5]

    assert install[5] == "test-tpu" and "--worker=all" in install
    install_script = option(install, "--command")
    assert_valid_bash(install_script)
    assert f"'jax[tpu]==0.10.2' -f {LIBTPU_FIND_LINKS}" in install_script
    assert "tar -xzf jina_jax_source.tgz -C jina_jax" in install_script
    assert "python3.11 -m venv .venv" in install_script

    assert launch == [
        *"gcloud compute tpus tpu-vm ssh test-tpu".split(),
        *target,
        "--worker=all",
        "--command",
        LAUNCH,
    ]
    assert commands[-1] == launch  # printed last, for the user to copy


def test_run_against_stub_gcloud_creates_installs_and_prints_launch(stub_gcloud):
    env = {**ENV, "REPO_URL": "https://example.com/jina_jax.git", "REPO_REF": "v1.0"}
    result = run_script([], env, stub_gcloud)
    assert result.returncode == 0, result.stderr
    calls = logged_calls(stub_gcloud[1])
    assert [argv[3] for argv in calls] == ["describe", "create", "ssh"]  # no scp: git mode
    assert "--spot" in calls[1]
    install = calls[2]
    assert "--worker=all" in install
    install_script = option(install, "--command")
    assert_valid_bash(install_script)
    assert "git clone --quiet https://example.com/jina_jax.git jina_jax" in install_script
    assert "checkout --quiet v1.0" in install_script
    assert "'jax[tpu]==0.10.2'" in install_script
    assert option(parse_commands(result.stdout)[-1], "--command") == LAUNCH


def test_reuses_a_ready_tpu_and_refuses_a_preempted_one(stub_gcloud):
    env = {**ENV, "REPO_URL": "https://example.com/jina_jax.git", "STUB_STATE": "READY"}
    result = run_script([], env, stub_gcloud)
    assert result.returncode == 0, result.stderr
    assert [argv[3] for argv in logged_calls(stub_gcloud[1])] == ["describe", "ssh"]

    stub_gcloud[1].unlink()
    result = run_script([], {**env, "STUB_STATE": "PREEMPTED"}, stub_gcloud)
    assert result.returncode == 1
    assert "PREEMPTED" in result.stderr
    assert [argv[3] for argv in logged_calls(stub_gcloud[1])] == ["describe"]


def test_pinned_jax_version_and_defaults(stub_gcloud):
    result = run_script(["--dry-run"], {"JAX_VERSION": "0.9.0"}, stub_gcloud)
    assert result.returncode == 0, result.stderr
    commands = parse_commands(result.stdout)
    create = next(argv for argv in commands if tpu_vm_verb(argv) == "create")
    assert option(create, "--accelerator-type") == "v4-32"
    assert "--spot" not in create and "--preemptible" not in create
    install = next(argv for argv in commands if tpu_vm_verb(argv) == "ssh")
    assert "'jax[tpu]==0.9.0'" in option(install, "--command")
    assert option(commands[-1], "--command").endswith(
        "--config=configs/v2_base.py --workdir=gs://BUCKET/run"
    )
    assert "placeholder" in result.stderr


def test_rejects_spot_with_preemptible_and_unknown_flags(stub_gcloud):
    both = run_script(["--dry-run"], {"SPOT": "1", "PREEMPTIBLE": "1"}, stub_gcloud)
    assert both.returncode == 2
    preemptible = run_script(["--dry-run"], {"PREEMPTIBLE": "1"}, stub_gcloud)
    create = next(
        argv for argv in parse_commands(preemptible.stdout) if tpu_vm_verb(argv) == "create"
    )
    assert create[-1] == "--preemptible"
    assert run_script(["--bogus"], {}, stub_gcloud).returncode == 2
