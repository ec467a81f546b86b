"""`wms`, the command line: the top layer, over the library (wms) and the Dagster code location (wms_assets)."""
