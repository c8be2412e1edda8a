"""Compiler options shared by every sring C++ target (one place, not copied)."""

SRING_COPTS = [
    "-std=c++20",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-O2",
]

# Hot loops (verify, sums) rely on GCC's vectoriser with a real cost model;
# -O2 alone uses the "very cheap" model, which leaves them scalar.
SRING_HOT_COPTS = SRING_COPTS + [
    "-ftree-vectorize",
    "-fvect-cost-model=dynamic",
]

# Debian's serial HDF5 keeps its headers apart (libhdf5-dev).
HDF5_COPTS = [
    "-isystem",
    "/usr/include/hdf5/serial",
]
