#!/usr/bin/env bash
# The main job: set up, generate the sample city, build it, serve the live operation
# view, and feed it simulated sensors (cim simulate) so the city is alive.
#   scripts/demo.sh [DIR] [--port N] [--host H] [--no-simulate]
# DIR defaults to ./demo; re-running reuses what is unchanged (the live store in
# DIR/live.sqlite keeps its sensors and readings between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=demo
host=127.0.0.1
port=8000
simulate=1
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --host) host=$2; shift 2 ;;
    --no-simulate) simulate=0; shift ;;
    *) dir=$1; shift ;;
  esac
done
bash scripts/setup.sh
[ -f "$dir/city.toml" ] || .venv/bin/cim sample "$dir"
.venv/bin/cim build "$dir/city.toml"
.venv/bin/cim info "$dir/city.toml"
# two departments' own layers (water's hydrants, city management's street furniture)
.venv/bin/cim layers demo "$dir/city.toml"
if [ "$simulate" = 0 ]; then
  exec .venv/bin/cim serve "$dir/city.toml" --host "$host" --port "$port"
fi
# The server in the background, the simulator beside it; stopping either (or Ctrl-C)
# stops both.
.venv/bin/cim serve "$dir/city.toml" --host "$host" --port "$port" &
server=$!
sim_host=$host
[ "$sim_host" = 0.0.0.0 ] && sim_host=127.0.0.1
.venv/bin/cim simulate "$dir/city.toml" --url "http://$sim_host:$port" --wait-for-server &
simulator=$!
trap 'kill -TERM $simulator $server 2>/dev/null; wait' INT TERM EXIT
wait -n $server $simulator
