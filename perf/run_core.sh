#!/usr/bin/env bash
# run_core.sh — the core benchmark: 8 producers into one verifying
# subscriber through expbusd, for 64 B, 1 KiB and 16 KiB records, against
# the machine's memcpy bandwidth. Builds nothing.
#
# Usage: perf/run_core.sh [BUILD_DIR]
#   BUILD_DIR holds src/broker/expbusd, tools/expbus and perf/memcpy_bw
#   (default: the first of build, builddir, _build that has them).
# Env: REPS (default 3) runs per size, the median is reported.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-}
if [[ -z $build ]]; then
	for d in "$root/build" "$root/builddir" "$root/_build"; do
		if [[ -x $d/tools/expbus ]]; then build=$d; break; fi
	done
fi
for f in src/broker/expbusd tools/expbus perf/memcpy_bw; do
	if [[ -z $build || ! -x $build/$f ]]; then
		echo "run_core.sh: no $f in '${build:-any build dir}'; build first" \
		     "(meson setup BUILD && ninja -C BUILD) and pass BUILD" >&2
		exit 2
	fi
done
expbusd=$build/src/broker/expbusd
expbus=$build/tools/expbus
memcpy_bw=$build/perf/memcpy_bw
reps=${REPS:-3}

dir=$(mktemp -d)
sock=$dir/expbus.sock
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "machine: $(nproc) CPUs, kernel $(uname -r)," \
     "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')," \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"

"$expbusd" --socket "$sock" --log-level warn 2>"$dir/expbusd.log" &
pids+=($!)
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
[[ -S $sock ]] || { echo "run_core.sh: expbusd did not start:" >&2; cat "$dir/expbusd.log" >&2; exit 1; }

# Per size: records per producer (about 1 s of work each) and the batch
# geometry (bigger batches for small records amortise the per-batch cost).
declare -A count=([64]=1000000 [1024]=300000 [16384]=60000)
declare -A subopt=([64]="--batch-size 1024 --batch-slots 16"
		   [1024]="--batch-size 256 --batch-slots 16"
		   [16384]="--batch-size 32 --batch-slots 8")
sizes=(64 1024 16384)

json_field() { grep -o "\"$2\":[0-9.e+]*" "$1" | head -1 | cut -d: -f2; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

declare -A rps gbs
failed=0
for size in "${sizes[@]}"; do
	r_list=() g_list=()
	for rep in $(seq "$reps"); do
		n=${count[$size]}
		report=$dir/sub-$size-$rep.json
		# shellcheck disable=SC2086 # subopt holds several options
		"$expbus" --socket "$sock" check --stream "bench$size" \
			--expect-producers 8 --expect-records "$n" --idle-ms 5000 \
			--report "$report" ${subopt[$size]} >"$dir/sub.out" 2>&1 &
		sub=$!
		pids+=($sub)
		if ! "$expbus" --socket "$sock" pub --stream "bench$size" -n 8 \
			--count "$n" --record-size "$size" --wait-subs 1 \
			>"$dir/pub.out" 2>&1; then
			echo "run_core.sh: pub failed for $size B:" >&2
			cat "$dir/pub.out" >&2
			failed=1
		fi
		if ! wait "$sub"; then
			echo "run_core.sh: check failed for $size B (records corrupt," \
			     "out of order or missing):" >&2
			cat "$dir/sub.out" >&2
			failed=1
			continue
		fi
		r_list+=("$(json_field "$report" records_per_s)")
		g_list+=("$(json_field "$report" gb_per_s)")
		echo "  $size B run $rep: $(cat "$dir/sub.out")"
	done
	if ((${#r_list[@]})); then
		rps[$size]=$(median "${r_list[@]}")
		gbs[$size]=$(median "${g_list[@]}")
	else
		rps[$size]=0 gbs[$size]=0
	fi
done

declare -A mbw
while read -r size bw; do mbw[$size]=$bw; done < <("$memcpy_bw" "${sizes[@]}")

echo
printf '%8s %14s %9s %12s %7s\n' size records/s GB/s memcpy_GB/s ratio
for size in "${sizes[@]}"; do
	awk -v s="$size" -v r="${rps[$size]}" -v g="${gbs[$size]}" -v m="${mbw[$size]}" \
		'BEGIN { printf "%8d %14.0f %9.3f %12.2f %6.1f%%\n", s, r, g, m, (m > 0 ? 100 * g / m : 0) }'
done
echo
awk -v r="${rps[64]}" -v g="${gbs[16384]}" -v m="${mbw[16384]}" 'BEGIN {
	printf "target 64 B:   >= 5 M records/s: %.2f M  %s\n", r / 1e6, (r >= 5e6 ? "MET" : "MISSED")
	printf "target 16 KiB: >= 40%% of memcpy: %.1f%%  %s\n", (m > 0 ? 100 * g / m : 0), (g >= 0.4 * m ? "MET" : "MISSED")
}'
exit $failed
