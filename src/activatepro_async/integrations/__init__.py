"""Engines that drive the SDK's bulk engine from elsewhere.

Each lives in its own package and needs its own extra, imported only when used:

- :mod:`activatepro_async.integrations.spark`: ``upsert_dataframe`` and
  ``delete_dataframe`` for Spark DataFrames (``pip install 'activatepro-async[spark]'``).
"""
