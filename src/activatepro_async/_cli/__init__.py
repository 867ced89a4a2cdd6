"""The pieces of the ``activatepro`` command (private; the command is the interface).

- :mod:`.readers`: CSV, JSON Lines and id-per-line files, streamed with line numbers;
- :mod:`.mapping`: ``--map`` and ``--type``, a source row to the wire form;
- :mod:`.journal`: the resumable run's record of accepted chunks;
- :mod:`.rejects`: the rejects file;
- :mod:`.engine`: one import or delete run over the SDK's bulk engine;
- :mod:`.progress`: the live progress bar and the summary (rich);
- :mod:`.demo`: fake users and the embedded demo;
- :mod:`.commands`: the click commands, added to the group of :mod:`activatepro_async.cli`.
"""
