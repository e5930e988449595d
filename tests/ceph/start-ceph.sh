#!/usr/bin/env bash
# A throw-away Ceph cluster on 127.0.0.1 for the tests of object storage (tests/util/ceph.rs):
# one monitor, one manager, N OSDs on memstore (no disks: data lives in the OSDs' memory,
# 1 GiB at most each) and a RADOS Gateway (the S3 API), all under one directory, auth off,
# and an S3 user with the access key CEPHTESTAK and the secret key CEPHTESTSECRET.
#
# Debian: apt-get install -y ceph-mon ceph-mgr ceph-osd radosgw ceph-common python3-boto3
#
#   [REPLICAS=1] [MON_PORT=port] start-ceph.sh DIR [RGW_PORT=7480] [OSDS=3]
#       Starts the cluster and prints shell assignments (CEPH_CONF, S3_ENDPOINT,
#       S3_ACCESS_KEY, S3_SECRET_KEY) to eval. REPLICAS=3 keeps three copies of every object
#       (at least one must stay up), so that an OSD can be killed; MON_PORT defaults to a
#       free loopback port. Every wait is bounded; on failure, says what failed with the end
#       of that daemon's log, and exits 1 (the daemons already started keep running: stop
#       them with --stop).
#   start-ceph.sh --rgw DIR
#       Starts the gateway of the cluster in DIR again (after `kill $(cat DIR/client.rgw.pid)`)
#       and waits until it answers S3.
#   start-ceph.sh --stop DIR [--rm]
#       Kills every daemon of the cluster in DIR and waits until they are gone (10 s at
#       most, else exits 1); --rm then removes DIR. Only kills processes started with DIR's
#       ceph.conf, so stale pid files are harmless.
#
# Each daemon writes its pid to DIR/<name>.pid (mon.a, mgr.x, osd.N, client.rgw) and its log
# to DIR/log/<name>.log.
set -euo pipefail

# The last lines of a daemon's log, for the failure messages.
log_tail() {
  local f="$D/log/$1.log"
  [ -f "$f" ] || return 0
  echo "--- last lines of $f:"
  grep -v '^$' "$f" | tail -n "${2:-15}"
}

# die WHAT [DAEMON...]: the failure, with the end of those daemons' logs, on stderr.
die() {
  local what=$1
  shift
  echo "start-ceph.sh: $what (cluster in $D)" >&2
  for name in "$@"; do log_tail "$name" >&2; done
  exit 1
}

# The ceph command line tool, once, bounded in time (it otherwise waits 300 s for a monitor).
c1() { timeout 30 ceph -c "$D/ceph.conf" --connect-timeout 20 "$@"; }

# The same, tried up to 5 times. A command may leave before its client has the monitor map
# and carry a zero fsid, which the monitor refuses ("wrong fsid", EPERM: about 1 call in 60
# here with Ceph 16.2); every command this script sends may be repeated.
c() {
  local _
  for _ in 1 2 3 4 5; do
    c1 "$@" && return 0
    sleep 0.5
  done
  return 1
}

# The pid of daemon $1 of DIR if it runs: its command line names DIR's ceph.conf.
live_pid() {
  local pid
  pid=$(cat "$D/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$D/ceph.conf" || return 1
  echo "$pid"
}

# The pids of the daemons of DIR that still run.
live_pids() {
  local f
  for f in "$D"/*.pid; do
    [ -f "$f" ] || continue
    f=${f##*/}
    live_pid "${f%.pid}" || true
  done
}

# KILL at once: the cluster is throw-away (memstore keeps nothing), and OSDs told to TERM
# spend seconds saying goodbye to a monitor that may already be gone.
stop() {
  local pids _ p cmd found=
  # First any start of this cluster still under way (its test process died meanwhile), so
  # that it starts no daemon after this; one it was starting gets a second to write its pid.
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    case $cmd in
      *"$D/start-ceph.sh $D "* | *"$D/start-ceph.sh --rgw $D"*)
        kill -KILL "${p#/proc/}" 2>/dev/null && found=1
        ;;
    esac
  done
  [ -z "$found" ] || sleep 1
  pids=$(live_pids)
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 100); do
    [ -n "$(live_pids)" ] || return 0
    sleep 0.1
  done
  echo "start-ceph.sh: still running 10 s after KILL: $(live_pids)" >&2
  return 1
}

# Starts the gateway (its settings are in ceph.conf's [client.rgw]) and waits until it
# answers S3, for at most 60 s. A gateway that exits before it answers (its first mon
# command may meet the "wrong fsid" above) is started again, 3 times at most.
start_rgw() {
  local port pid end attempt from
  port=$(sed -n 's/^rgw frontends = .*endpoint=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$D/ceph.conf")
  [ -n "$port" ] || die "no gateway port in $D/ceph.conf"
  if pid=$(live_pid client.rgw); then
    die "the gateway already runs (pid $pid)"
  fi
  end=$((SECONDS + 60))
  for attempt in 1 2 3; do
    # A stale pid file would pass for a gateway that died.
    rm -f "$D/client.rgw.pid"
    # The log grows across restarts: only what this attempt writes counts.
    from=$(($(stat -c %s "$D/log/client.rgw.log" 2>/dev/null || echo 0) + 1))
    radosgw -n client.rgw -c "$D/ceph.conf" >>"$D/log/rgw.out" 2>&1 \
      || die "radosgw did not start: $(tail -3 "$D/log/rgw.out")" client.rgw
    while [ $SECONDS -lt $end ]; do
      # The gateway's answer to an anonymous GET /, not another server's on a taken port.
      [[ $(curl -s --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null) == *ListAllMyBucketsResult* ]] \
        && return 0
      [ ! -f "$D/client.rgw.pid" ] || live_pid client.rgw >/dev/null || break
      # A gateway that cannot bind logs so and lingers without serving.
      if tail -c "+$from" "$D/log/client.rgw.log" 2>/dev/null | grep -q 'failed to bind'; then
        die "the gateway cannot listen on 127.0.0.1:$port (taken?)" client.rgw
      fi
      sleep 0.5
    done
    [ $SECONDS -lt $end ] || break
    echo "start-ceph.sh: the gateway exited before it answered (attempt $attempt)" >&2
  done
  die "the gateway does not answer on 127.0.0.1:$port" client.rgw
}

case "${1:-}" in
  --rgw)
    D=$(realpath -e "${2:?usage: start-ceph.sh --rgw DIR}")
    start_rgw
    exit 0
    ;;
  --stop)
    D=$(realpath -m "${2:?usage: start-ceph.sh --stop DIR [--rm]}")
    status=0
    stop || status=1
    [ "${3:-}" != --rm ] || rm -rf "$D"
    exit $status
    ;;
  '' | -*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2
    exit 2
    ;;
esac

D=$(realpath -m "$1")
RGW_PORT=${2:-7480}
OSDS=${3:-3}
REPLICAS=${REPLICAS:-1}
for tool in ceph-mon ceph-mgr ceph-osd radosgw radosgw-admin ceph monmaptool curl python3 timeout
do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "start-ceph.sh: $tool is missing; Debian: apt-get install -y" \
      "ceph-mon ceph-mgr ceph-osd radosgw ceph-common python3-boto3" >&2
    exit 1
  }
done
MON_PORT=${MON_PORT:-$(python3 -c \
  'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
mkdir -p "$D"/{mon,mgr,osd,rgw,run,log}
FSID=$(python3 -c 'import uuid; print(uuid.uuid4())')
# The OSDs do not place themselves in the CRUSH map on start ("osd crush update on start",
# "osd class update on start"): that is a monitor command sent as soon as the OSD has
# authenticated, and with auth off it may leave before the OSD has the monitor map, with a
# zero fsid that the monitor refuses ("wrong fsid"), and the OSD then exits. This script
# places them itself before they start.
# A killed OSD is marked down as soon as one peer finds its port closed ("osd fast fail on
# connection refused", the default): one reporter is enough, and the OSDs all sit on one host,
# so reporters count per OSD rather than per host.
cat >"$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = [v1:127.0.0.1:$MON_PORT]
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
mon warn on insecure global id reclaim allowed = false
mon warn on msgr2 not enabled = false
osd pool default size = $REPLICAS
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = 1073741824
osd crush chooseleaf type = 0
osd crush update on start = false
osd class update on start = false
mon osd min down reporters = 1
mon osd reporter subtree level = osd
run dir = $D/run
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
pid file = $D/\$name.pid
mon data = $D/mon/\$name
osd data = $D/osd/\$name
mgr data = $D/mgr/\$name
rgw data = $D/rgw/\$name
mon data avail crit = 0
mon data avail warn = 0

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw dns name = 127.0.0.1
CONF
export CEPH_CONF="$D/ceph.conf"

monmaptool --create --clobber --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" "$D/monmap" \
  >"$D/log/monmap.out" 2>&1 || die "monmaptool failed: $(cat "$D/log/monmap.out")"
ceph-mon --mkfs -i a --monmap "$D/monmap" -c "$CEPH_CONF" >"$D/log/mon-mkfs.out" 2>&1 \
  || die "ceph-mon --mkfs failed: $(tail -5 "$D/log/mon-mkfs.out")" mon.a
ceph-mon -i a -c "$CEPH_CONF" >>"$D/log/mon.out" 2>&1 \
  || die "ceph-mon did not start (port $MON_PORT taken?)" mon.a
end=$((SECONDS + 30))
until timeout 10 ceph -c "$CEPH_CONF" --connect-timeout 5 -s >/dev/null 2>&1; do
  [ $SECONDS -lt $end ] || die "the monitor does not answer on 127.0.0.1:$MON_PORT after 30 s" mon.a
  sleep 0.5
done
ceph-mgr -i x -c "$CEPH_CONF" >>"$D/log/mgr.out" 2>&1 || die "ceph-mgr did not start" mgr.x

# The OSDs boot side by side; then wait until the monitor has them all up.
ids=()
for _ in $(seq "$OSDS"); do
  uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  id=$(c osd create "$uuid" 2>>"$D/log/osd-create.out") \
    || die "ceph osd create failed: $(tail -3 "$D/log/osd-create.out")" mon.a
  c osd crush add "osd.$id" 1.0 root=default host=localhost >>"$D/log/osd-create.out" 2>&1 \
    || die "ceph osd crush add osd.$id failed: $(tail -3 "$D/log/osd-create.out")" mon.a
  mkdir -p "$D/osd/osd.$id"
  ceph-osd -i "$id" --mkfs --osd-uuid "$uuid" -c "$CEPH_CONF" >"$D/log/osd-mkfs.$id.out" 2>&1 \
    || die "ceph-osd --mkfs failed for osd.$id" "osd.$id"
  ceph-osd -i "$id" -c "$CEPH_CONF" >>"$D/log/osd.out" 2>&1 || die "osd.$id did not start" "osd.$id"
  ids+=("$id")
done
end=$((SECONDS + 60))
until [ "$(c osd dump 2>/dev/null | grep -c '^osd\.[0-9]* up')" -ge "$OSDS" ]; do
  [ $SECONDS -lt $end ] || die "not all $OSDS OSDs up after 60 s" "${ids[@]/#/osd.}" mon.a
  sleep 0.5
done

start_rgw
# The same retries as c(); a retry finds the user made by an attempt that failed late.
made=
for _ in 1 2 3 4 5; do
  timeout 30 radosgw-admin -c "$CEPH_CONF" user create --uid=test --display-name=test \
    --access-key=CEPHTESTAK --secret-key=CEPHTESTSECRET >>"$D/log/user.out" 2>&1 \
    || timeout 30 radosgw-admin -c "$CEPH_CONF" user info --uid=test >>"$D/log/user.out" 2>&1 \
    && { made=1; break; }
  sleep 0.5
done
[ -n "$made" ] || die "radosgw-admin user create failed: $(tail -5 "$D/log/user.out")" client.rgw
echo "CEPH_CONF=$CEPH_CONF"
echo "S3_ENDPOINT=http://127.0.0.1:$RGW_PORT"
echo "S3_ACCESS_KEY=CEPHTESTAK"
echo "S3_SECRET_KEY=CEPHTESTSECRET"
