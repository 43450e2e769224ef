"""spml's Bluetooth LE actuator. Importing this package is cheap: bleak and bumble load on use."""

__version__ = "0.1.0"
