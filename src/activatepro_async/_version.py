#: The version of activatepro-async installed.
__version__ = "0.1.0.dev0"
