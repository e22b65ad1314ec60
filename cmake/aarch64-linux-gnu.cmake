# aarch64-linux-gnu.cmake — the toolchain of the aarch64 runtime libraries: Debian's
# cross compilers (gcc-aarch64-linux-gnu), its arm64 multiarch packages found by
# pkg-config, and SentencePiece from the arm64 package unpacked by scripts/deps.sh
# (it cannot be installed beside the host's), passed as CMAKE_PREFIX_PATH.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
