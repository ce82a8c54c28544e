#!/usr/bin/env bash
# Regenerates Generated/sparkplug_b.pb.swift from sparkplug_b.proto. The generated file is
# committed, so that building the package needs neither protoc nor the plugin; run this only
# after changing the .proto, and commit both.
#
# Needs protoc (Debian: apt-get install protobuf-compiler) and protoc-gen-swift of the
# swift-protobuf version the package depends on (1.39.0). Building the plugin takes several
# minutes; the script builds it once into .build-protoc-gen-swift/ at the package root:
#
#   Sources/SparkplugB/regenerate.sh
#   PROTOC_GEN_SWIFT=/path/to/protoc-gen-swift Sources/SparkplugB/regenerate.sh   # a plugin you have
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="1.39.0"

plugin="${PROTOC_GEN_SWIFT:-}"
if [ -z "$plugin" ]; then
    work="$root/.build-protoc-gen-swift"
    if [ ! -d "$work/swift-protobuf" ]; then
        git clone --quiet --depth 1 --branch "$version" https://github.com/apple/swift-protobuf.git "$work/swift-protobuf"
    fi
    swift build -c release --package-path "$work/swift-protobuf" --product protoc-gen-swift
    plugin="$work/swift-protobuf/.build/release/protoc-gen-swift"
fi

protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$here" --swift_opt=Visibility=Internal \
    --swift_out="$here/Generated" "$here/sparkplug_b.proto"
echo "regenerated $here/Generated/sparkplug_b.pb.swift"
