#!/usr/bin/env bash
# Regenerates the embedded demo model (models/demo/model.json) by the learning
# loop on the simulator: serve the hand-set starting policy
# (handset-model.json) with the demo catalog's home banner exploring, simulate
# customers with a known ground truth against it, export the decision and
# event logs, train on them with the starting policy's feature specs, and
# write the trained artifact into models/demo/model.json (and its copy in the
# fuzz corpus, service/fuzz/corpus/model/demo.json).
#
# Usage: models/demo/regenerate.sh   (from the repository root, after
# `cargo build --release -p nudge-service`)
#
# Settings (environment): NUDGE (the binary, default target/release/nudge),
# SEED (5), CUSTOMERS (20000), VERSION (demo-2026-12), PORT (50091), WORK (a
# directory for the server's data, the logs and the training report; default
# a new temporary one, kept at the end for inspection).
#
# The customers and their outcome draws are functions of the seed, but the
# server seeds each exploring decision from its random decision id, so
# another run logs other explored actions and trains slightly other weights.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
nudge=${NUDGE:-$root/target/release/nudge}
seed=${SEED:-5}
customers=${CUSTOMERS:-20000}
version=${VERSION:-demo-2026-12}
port=${PORT:-50091}
work=${WORK:-$(mktemp -d -t nudge-demo-model.XXXXXX)}
server=http://127.0.0.1:$port
demo=$root/models/demo

mkdir -p "$work"
# The demo catalog with the home banner exploring (epsilon 0.3), so the log
# shows the other actions too and off-policy evaluation has something to weigh.
sed 's/^exploration = { method = "none" }$/exploration = { method = "epsilon", epsilon = 0.3 }/' \
    "$demo/catalog.toml" >"$work/exploring.toml"
grep -q 'epsilon = 0.3' "$work/exploring.toml"

"$nudge" serve --data-dir "$work/data" --catalog "$work/exploring.toml" \
    --model "$demo/handset-model.json" --listen "127.0.0.1:$port" --metrics-listen off \
    --budget-ms 1000 \
    2>"$work/serve.log" &
serving=$!
trap 'kill "$serving" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    "$nudge" model list --server "$server" >/dev/null 2>&1 && break
    sleep 0.2
done

"$nudge" simulate --server "$server" --customers "$customers" --seed "$seed" \
    --catalog "$work/exploring.toml" --json >"$work/simulated.json"
log=$work/simulated-seed-$seed-customers-$customers
"$nudge" export --server "$server" --out "$log.decisions.parquet"
"$nudge" export --server "$server" --events --out "$log.events.parquet"
kill "$serving"
wait "$serving" || true
trap - EXIT

# The starting policy's feature specs, replayed from the event log, but for
# action_value: with one value per action it works as an action id, and the
# simulated placements never serve an email, push, SMS or CSM action, so its
# weight would extrapolate to their values (120 for the CSM expansion call).
features=()
while IFS= read -r spec; do
    [ "$spec" = action_value ] || features+=(--feature "$spec")
done < <(sed -n '/"features": \[/,/\]/p' "$demo/handset-model.json" | sed -n 's/^ *"\(.*\)",\{0,1\}$/\1/p')
[ "${#features[@]}" -eq 106 ]
"$nudge" train --log "$log.decisions.parquet" --events "$log.events.parquet" \
    --catalog "$work/exploring.toml" --version "$version" --out "$work/trained" --force \
    "${features[@]}"

sed "s|^  \"description\": \"|  \"description\": \"The embedded demo model of the Acme Analytics catalog, trained by models/demo/regenerate.sh: nudge simulate --seed $seed --customers $customers against the hand-set starting policy (handset-model.json) with home_banner exploring at epsilon 0.3, then |" \
    "$work/trained/model.json" >"$demo/model.json"
grep -q 'regenerate.sh' "$demo/model.json"
cp "$demo/model.json" "$root/service/fuzz/corpus/model/demo.json"
echo "wrote $demo/model.json (version $version); logs, report.json and report.html in $work" >&2
