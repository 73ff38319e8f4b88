#!/bin/bash
# Build time of a crate with a 30-field `#[derive(Entity)]` struct against the same struct
# with serde derives only (issue 20's target: at most 3x).
#
#   macros/tools/build_time.sh [FOLDKIT_REPO] [ROUNDS]
#
# Makes two scratch crates in a temp dir (the same 30 fields as the expansion-size test in
# macros/src/expansion_size.rs), builds their dependencies once, then times `cargo build`
# (non-incremental, so the whole crate is compiled) after `touch src/lib.rs`, the two
# crates interleaved so machine load hits them alike. Prints each run and the medians.
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
rounds=${2:-5}
work=$(mktemp -d)
export CARGO_INCREMENTAL=0

make_crate() { # dir mode
    local dir=$work/$1 mode=$1 derive id ix
    mkdir -p "$dir/src"
    if [ "$mode" = entity ]; then
        derive="Entity, Serialize, Deserialize"; id="#[entity(id)]"; ix="#[entity(index)]"
    else
        derive="Serialize, Deserialize"; id=""; ix=""
    fi
    cat > "$dir/Cargo.toml" <<TOML
[package]
name = "bt_$mode"
version = "0.1.0"
edition = "2024"
[dependencies]
foldkit = { path = "$repo/runtime" }
serde = { version = "1.0", features = ["derive"] }
[workspace]
TOML
    cp "$repo/Cargo.lock" "$dir/"
    cat > "$dir/src/lib.rs" <<RS
use foldkit::prelude::*;
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status { A, B }
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind { X, Y }
#[derive($derive, Clone, Debug)]
pub struct Wide {
    $id id: u64,
    pub a1: u32, pub a2: u64, pub a3: i64, pub a4: i32, pub a5: u16, pub a6: u8, pub a7: usize, pub a8: i16,
    $ix pub a9: u64,
    pub s1: String, pub s2: String, pub s3: String, pub s4: String,
    $ix pub s5: String,
    pub b1: bool, pub b2: bool, pub b3: bool, pub b4: bool, pub b5: bool,
    pub o1: Option<String>, pub o2: Option<u64>, pub o3: Option<u32>, pub o4: Option<String>, pub o5: Option<i64>,
    pub v1: Vec<String>, pub v2: Vec<u64>,
    $ix pub v3: Vec<String>,
    pub e1: Status, pub e2: Kind,
}
RS
}

make_crate serde
make_crate entity
export CARGO_TARGET_DIR=$work/target
for c in serde entity; do (cd "$work/$c" && cargo build -q); done
declare -A times
for i in $(seq "$rounds"); do
    for c in serde entity; do
        touch "$work/$c/src/lib.rs"
        start=$(date +%s.%N)
        (cd "$work/$c" && cargo build -q)
        end=$(date +%s.%N)
        t=$(echo "$end - $start" | bc)
        times[$c]+="$t "
        echo "$c run $i: ${t}s"
    done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
s=$(echo "${times[serde]}" | median)
e=$(echo "${times[entity]}" | median)
echo "median: serde-only ${s}s, with Entity ${e}s: $(echo "scale=2; $e / $s" | bc)x"
rm -rf "$work"
