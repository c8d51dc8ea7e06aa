"""Helpers shared by tests (and by the fuzz benchmarks), one home for each: test modules import from here,
never from each other.

- :mod:`.waiting`: ``wait_until``, the one way a test waits on a condition
- :mod:`.envelopes`: signed envelopes and a pipeline that knows their key
- :mod:`.codec_harness`, :mod:`.fuzz_inputs`: feeding codecs three ways, hostile inputs
- :mod:`.registry`: a registry for tests, its places, a provisioned registry file
- :mod:`.reference_devices`: the dict-based device table the dense one is checked against
- :mod:`.api_fuzz_harness`: generated calls against the registry API
- :mod:`.cli_helpers`: the ``zhijian`` command in process
- :mod:`.ingest_process`, :mod:`.hostile_devices`, :mod:`.mqtt_clients`, :mod:`.fleet`: ingest processes, devices
  and brokers
- :mod:`.seller`: a simulated scale selling on a pseudo-terminal

State goes under each test's ``tmp_path``, never into the working directory.
"""
