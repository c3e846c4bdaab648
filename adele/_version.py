"""The package version, in a module of its own: the package imports the API lazily, and modules that print the version
(safety, cli) import it from here, not from the package."""
__version__ = "0.1.0"
