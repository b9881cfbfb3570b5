"""bioimage.io model packages: ours (write and read) and other tools' (predict)."""
