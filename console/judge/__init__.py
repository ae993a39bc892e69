"""The sequential judge's statistics: anytime-valid tests on the counts both tracks served."""
