#!/bin/sh
# Generates the Python stubs of the nudge.v1 protos into ./gen (git-ignored).
# peer_server.py and smoke_client.py run the same step themselves when ./gen
# is missing or older than the protos, so this is only needed to do it ahead.
#
#   PYTHON=/path/to/venv/bin/python ./gen.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../proto" && pwd)
python=${PYTHON:-python3}
rm -rf "$here/gen"
mkdir -p "$here/gen"
# `python -m grpc_tools.protoc` adds grpcio-tools' own include directory, which
# holds google/protobuf/timestamp.proto and the other well-known types.
"$python" -m grpc_tools.protoc -I "$proto" \
    --python_out="$here/gen" --grpc_python_out="$here/gen" \
    "$proto"/nudge/v1/*.proto
echo "stubs in $here/gen"
