#!/usr/bin/env bash
# Installs everything zkchaos and its tests need on Debian (run as root), into ./.venv.
#   system: Apache ZooKeeper (reference server + zkCli.sh), Java, sshd, iptables, libfaketime, iproute2
#   python: this project with its test extras, in a virtual environment (Debian's python is
#           externally managed, so nothing is installed into it)
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (it installs Debian packages)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    zookeeper default-jre-headless openssh-server openssh-client iptables iproute2 \
    libfaketime faketime python3 python3-venv python3-pip procps sudo chromium fuse3

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip "setuptools>=77" wheel
.venv/bin/python -m pip install -q -e '.[test]'
echo "install.sh: ready (.venv/bin/zkchaos)"
