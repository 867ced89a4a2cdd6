"""``python -m activatepro_async``: the ``activatepro`` command."""

from activatepro_async.cli import main

if __name__ == "__main__":
    main()
