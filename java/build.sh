#!/bin/sh
# Build pyha's Java SPI (io.pyha.spi and the JVM host's helpers) into a jar with plain javac:
# no Maven repository needed. Java plugin writers compile against this jar.
#   java/build.sh [OUT_DIR]        -> OUT_DIR/pyha-spi.jar (default: java/build)
# pyha itself builds the same sources on demand, cached by their hash: python -m pyha.jvm.build
set -eu
here=$(cd "$(dirname "$0")" && pwd)
java_home=${PYHA_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
[ -x "$java_home/bin/javac" ] || java_home=${JAVA_HOME:?set PYHA_JAVA_HOME to a JDK 17 or later}
out=${1:-$here/build}
rm -rf "$out/classes"
mkdir -p "$out/classes"
find "$here/src" -name '*.java' | sort > "$out/sources.txt"
"$java_home/bin/javac" --release 17 -encoding UTF-8 -Xlint:all -d "$out/classes" @"$out/sources.txt"
"$java_home/bin/jar" --create --file "$out/pyha-spi.jar" -C "$out/classes" .
echo "$out/pyha-spi.jar"
