#!/usr/bin/env bash
# Create (or reuse) a Cloud TPU VM, install jina_jax on every worker, print the launch command.
#
# Usage: [VAR=value ...] bash tpu_setup.sh [--dry-run] [--help]
#   --dry-run   print the commands instead of running them (needs no gcloud)
#   --help      show this text
# Re-running reuses the TPU and replaces ~/jina_jax (and its .venv) on every worker.
#
# Variables (environment):
#   TPU_NAME          TPU VM name                           (default: jina-jax)
#   ZONE              zone that has the accelerator         (default: us-central2-b, where v4 is)
#   ACCELERATOR_TYPE  TPU type and chip count               (default: v4-32)
#   RUNTIME_VERSION   TPU VM software image                 (default: tpu-ubuntu2204-base)
#   PROJECT           Google Cloud project                  (default: gcloud's configured project)
#   JAX_VERSION       pinned jax[tpu] release               (default: 0.10.2)
#   PYTHON_VERSION    Python for the venv on the workers    (default: 3.11; the package needs >=3.11)
#   REPO_URL          git URL to clone on every worker      (default: empty = copy this checkout
#                     with `gcloud compute tpus tpu-vm scp`, uncommitted changes included)
#   REPO_REF          branch, tag or commit of REPO_URL     (default: main)
#   CONFIG            training config                       (default: configs/v2_base.py)
#   WORKDIR           checkpoints and logs, a GCS path that every worker can write
#                     (default: gs://BUCKET/run, a placeholder to replace)
#   SPOT              1 = create a Spot TPU                 (default: 0)
#   PREEMPTIBLE       1 = create a preemptible TPU          (default: 0; at most one of SPOT/PREEMPTIBLE)
#
# Example:
#   TPU_NAME=jina-v2 WORKDIR=gs://my-bucket/v2-base SPOT=1 bash tpu_setup.sh
set -euo pipefail

TPU_NAME="${TPU_NAME:-jina-jax}"
ZONE="${ZONE:-us-central2-b}"
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v4-32}"
RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
PROJECT="${PROJECT:-}"
JAX_VERSION="${JAX_VERSION:-0.10.2}"
PYTHON_VERSION="${PYTHON_VERSION:-3.11}"
REPO_URL="${REPO_URL:-}"
REPO_REF="${REPO_REF:-main}"
CONFIG="${CONFIG:-configs/v2_base.py}"
WORKDIR="${WORKDIR:-gs://BUCKET/run}"
SPOT="${SPOT:-0}"
PREEMPTIBLE="${PREEMPTIBLE:-0}"

# libtpu wheels are published on this page rather than on PyPI for some releases (JAX install docs).
readonly LIBTPU_FIND_LINKS="https://storage.googleapis.com/jax-releases/libtpu_releases.html"
# The launch command below does `cd jina_jax`, so the checkout lives there in the home directory.
readonly REMOTE_DIR="jina_jax"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly REPO_ROOT

usage() {
  # The header comment is the help text, so the two cannot drift apart.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

if [[ "$DRY_RUN" == 0 ]] && ! command -v gcloud >/dev/null; then
  echo "gcloud not found: install the Google Cloud CLI, or use --dry-run" >&2
  exit 1
fi
if [[ "$SPOT" == 1 && "$PREEMPTIBLE" == 1 ]]; then
  echo "set at most one of SPOT=1 and PREEMPTIBLE=1" >&2
  exit 2
fi

# Prints a command the way a user would type it: plain words bare, anything else single-quoted.
show() {
  local out=() word
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
      out+=("$word")
    else
      out+=("'${word//\'/\'\\\'\'}'")
    fi
  done
  echo "${out[*]}"
}

# Runs a command, or only prints it under --dry-run.
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    show "$@"
  else
    echo "+ $(show "$@")" >&2
    "$@"
  fi
}

# Flags every `gcloud compute tpus tpu-vm` call shares.
gcloud_target=(--zone "$ZONE")
if [[ -n "$PROJECT" ]]; then
  gcloud_target+=(--project "$PROJECT")
fi
tpu_vm=(gcloud compute tpus tpu-vm)

create_or_reuse_tpu() {
  local create=("${tpu_vm[@]}" create "$TPU_NAME" "${gcloud_target[@]}"
    --accelerator-type "$ACCELERATOR_TYPE" --version "$RUNTIME_VERSION")
  if [[ "$SPOT" == 1 ]]; then create+=(--spot); fi
  if [[ "$PREEMPTIBLE" == 1 ]]; then create+=(--preemptible); fi

  if [[ "$DRY_RUN" == 1 ]]; then
    # Whether the TPU exists is only known at run time: show both halves of the decision.
    echo "# if the TPU does not exist yet:"
    show "${tpu_vm[@]}" describe "$TPU_NAME" "${gcloud_target[@]}" --format='value(state)'
    show "${create[@]}"
    return
  fi
  local state
  if state="$("${tpu_vm[@]}" describe "$TPU_NAME" "${gcloud_target[@]}" --format='value(state)' 2>/dev/null)"; then
    if [[ "$state" != READY ]]; then
      # A preempted or stopped VM cannot be ssh'd into; recreating it is the user's call.
      echo "TPU $TPU_NAME exists in state $state; delete it or pick another TPU_NAME" >&2
      exit 1
    fi
    echo "reusing TPU $TPU_NAME ($state)" >&2
  else
    run "${create[@]}"
  fi
}

# Puts the source tree at ~/$REMOTE_DIR on every worker, as a tarball copy when no REPO_URL is set.
copy_source_tree() {
  local tarball="${TMPDIR:-/tmp}/jina_jax_source.tgz"
  run tar -czf "$tarball" -C "$REPO_ROOT" \
    --exclude=./.git --exclude=./.venv --exclude=./runs --exclude=./workdir \
    --exclude=./data_cache --exclude='__pycache__' --exclude='*.egg-info' \
    --exclude=./.pytest_cache --exclude=./.ruff_cache .
  run "${tpu_vm[@]}" scp "$tarball" "$TPU_NAME:jina_jax_source.tgz" "${gcloud_target[@]}" --worker=all
  run rm -f "$tarball"
}

# The script every worker runs. Values are %q-quoted so they reach the remote shell unchanged.
remote_install_script() {
  local fetch_source
  if [[ -n "$REPO_URL" ]]; then
    fetch_source="rm -rf $REMOTE_DIR
git clone --quiet $(printf %q "$REPO_URL") $REMOTE_DIR
git -C $REMOTE_DIR checkout --quiet $(printf %q "$REPO_REF")"
  else
    fetch_source="rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR
tar -xzf jina_jax_source.tgz -C $REMOTE_DIR && rm jina_jax_source.tgz"
  fi
  local python="python$PYTHON_VERSION"
  cat <<EOF
set -euo pipefail
# Ubuntu 22.04 TPU images ship Python 3.10; deadsnakes provides newer ones with venv support.
if ! command -v $python >/dev/null || ! $python -c 'import ensurepip' 2>/dev/null; then
  # A fresh VM runs unattended-upgrades at boot, holding the dpkg lock: wait for it.
  apt_get="sudo apt-get -o DPkg::Lock::Timeout=600 -qq"
  \$apt_get update
  \$apt_get install -y software-properties-common
  sudo add-apt-repository -y ppa:deadsnakes/ppa
  \$apt_get install -y $python $python-venv
fi
$fetch_source
cd $REMOTE_DIR
$python -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
# The lock pins CPU jax and torch; TPU workers take jax from jax[tpu] and train without torch.
grep -v -E '^(jax|jaxlib|torch|sentence-transformers)==' requirements.lock > requirements-tpu.txt
.venv/bin/pip install --quiet -r requirements-tpu.txt 'jax[tpu]==$JAX_VERSION' -f $LIBTPU_FIND_LINKS
.venv/bin/pip install --quiet --no-deps -e .
# Versions only: touching the TPU here would block until every worker got this far.
.venv/bin/python -c 'from importlib.metadata import version as v; print("jax", v("jax"), "libtpu", v("libtpu"))'
EOF
}

create_or_reuse_tpu
if [[ -z "$REPO_URL" ]]; then
  copy_source_tree
fi
run "${tpu_vm[@]}" ssh "$TPU_NAME" "${gcloud_target[@]}" --worker=all \
  --command "$(remote_install_script)"

if [[ "$WORKDIR" == gs://BUCKET/* ]]; then
  echo "# WORKDIR is a placeholder: set it to a gs:// path this TPU's service account can write." >&2
fi
echo "# Launch training on all workers with:"
show "${tpu_vm[@]}" ssh "$TPU_NAME" "${gcloud_target[@]}" --worker=all --command \
  "cd $REMOTE_DIR && .venv/bin/python -m jina_jax.main --config=$(printf %q "$CONFIG") --workdir=$(printf %q "$WORKDIR")"
