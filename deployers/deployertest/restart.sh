#!/bin/sh
# bin/restart of a deployertest release, for deployers that switch `current` and then run a
# restart command in the release folder (the ssh deployer): it stops the host's test app
# (pid in $IMMUNITY_BASE/testapp.pid) and starts this release's bin/testapp in its own
# session, in the release folder itself, logging to $IMMUNITY_BASE/app.log. The port comes
# from $PORT or the file $IMMUNITY_BASE/port. It waits (5s at most) until the app listens;
# if the app exits first, it prints the log's last lines and fails.
set -u
base=${IMMUNITY_BASE:?IMMUNITY_BASE is not set}
cd "$(pwd -P)" || exit 1
port=${PORT:-$(cat "$base/port" 2>/dev/null)}
pidfile=$base/testapp.pid
alive() { # a running process, not a zombie
	s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -n "$s" ] && [ "$s" != Z ]
}
if [ -s "$pidfile" ]; then
	old=$(cat "$pidfile")
	kill "$old" 2>/dev/null
	i=0
	while alive "$old" && [ "$i" -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -9 "$old" 2>/dev/null
	rm -f "$pidfile"
fi
touch "$base/app.log"
start=$(wc -c <"$base/app.log")
PORT=$port setsid bin/testapp >>"$base/app.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pidfile"
# Wait up to 5s for the app to listen or to die.
i=0
while ! tail -c +"$((start + 1))" "$base/app.log" | grep -q "^testapp listening" && [ "$i" -lt 100 ]; do
	if ! alive "$pid"; then
		echo "testapp exited at start; last lines of $base/app.log:" >&2
		tail -c +"$((start + 1))" "$base/app.log" | tail -n 20 >&2
		exit 1
	fi
	sleep 0.05
	i=$((i + 1))
done
