"""The napari dock widget and its Qt parts (all Qt code of the plugin lives here)."""
