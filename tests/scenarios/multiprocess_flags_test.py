"""Misused multi-process flags stop `train` with one line (exit 2), quickly, instead of an
IndexError, a native abort or a segmentation fault from JAX's coordination service."""

import socket
import time

import pytest
from commands import assert_one_line_error, run

# Shorter than any test's patience; the default (300 s) is for real clusters.
JOIN_TIMEOUT_S = 3


def _train(tmp_path, *job_flags: str):
  return run(
    'mtl_jax.train', '--config=configs/joint.py:tiny', f'--workdir={tmp_path / "run"}', *job_flags
  )


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.parametrize(
  'address, fragment',
  [
    ('localhost', "--coordinator_address='localhost' has no port"),
    ('127.0.0.1:70000', "has port '70000': a port is a number from 1 to 65535"),
  ],
)
def test_an_address_that_is_not_host_and_port_is_one_line(tmp_path, address, fragment):
  result = _train(
    tmp_path, f'--coordinator_address={address}', '--num_processes=2', '--process_id=0'
  )
  assert_one_line_error(result, 'train', fragment)


def test_a_process_id_outside_the_job_is_one_line(tmp_path):
  result = _train(
    tmp_path, f'--coordinator_address=127.0.0.1:{_free_port()}', '--num_processes=2',
    '--process_id=2',
  )  # fmt: skip
  assert_one_line_error(result, 'train', '--process_id=2 must be in 0 … --num_processes - 1 (1)')


def test_a_coordinator_port_in_use_is_one_line(tmp_path):
  with socket.socket() as listener:
    listener.bind(('127.0.0.1', 0))
    listener.listen()
    port = listener.getsockname()[1]
    result = _train(
      tmp_path, f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2', '--process_id=0'
    )
  assert_one_line_error(result, 'train', f'--coordinator_address port {port} is in use')


@pytest.mark.parametrize('process_id', [0, 1])
def test_a_peer_that_never_joins_is_one_line_after_the_timeout(tmp_path, process_id):
  started = time.time()
  result = _train(
    tmp_path, f'--coordinator_address=127.0.0.1:{_free_port()}', '--num_processes=2',
    f'--process_id={process_id}', f'--initialization_timeout={JOIN_TIMEOUT_S}',
  )  # fmt: skip
  assert_one_line_error(
    result,
    'train',
    f'waited {JOIN_TIMEOUT_S} s (--initialization_timeout) as process {process_id} for all 2 '
    'processes of the job to join',
  )
  print(f'process {process_id} stopped {time.time() - started:.1f} s after it started')
