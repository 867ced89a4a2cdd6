"""The pieces of the ``activatepro`` command (private; the command is the interface).

:mod:`activatepro_async.cli` is the entry point: the click group, which loads
a family's module when one of its commands runs. The families:

- :mod:`.bulk_commands`: ``import`` and ``delete``, the file-driven runs;
- :mod:`.lookup_commands`: ``get``, ``find`` and ``track``;
- :mod:`.demo_command`: ``demo``, fake users into an embedded emulator;
- :mod:`.serve_command`: ``serve``, the emulator on a real port.

What they are built of:

- :mod:`.options`: the shared options, the client of ``--api-key`` and ``--base-url``,
  the errors as one line;
- :mod:`.bulk_run`: one run with its progress bar and summary (import, delete, demo);
- :mod:`.readers`: CSV, JSON Lines and id-per-line files, streamed with line numbers;
- :mod:`.mapping`: ``--map`` and ``--type``, a source row to the wire form;
- :mod:`.journal`: the resumable run's record of accepted chunks;
- :mod:`.rejects`: the rejects file;
- :mod:`.engine`: one import or delete run over the SDK's bulk engine;
- :mod:`.progress`: the live progress bar and the summary (rich);
- :mod:`.demo`: fake users for the demo.

This package imports nothing (no click either): the entry point reads the
install hint from here to say what is missing when click itself is.
"""

#: What to install when the command misses a dependency: the one extra with
#: everything every command needs (click, rich, faker, uvicorn), whichever it was.
INSTALL_HINT = "pip install 'activatepro-async[cli]'"
