//! Fuzzing every JSON input of the C ABI: the committed seeds in `tests/fuzz/corpus` are
//! mutated (bytes flipped, inserted, cut or repeated, invalid UTF-8, numbers out of range, deep
//! nesting, oversized text) and fed to the exports against a real database. Pass: no call panics
//! (`TM_PANIC`), every error carries a documented code and a readable message, every output is
//! valid JSON, and payloads over the size limit or nested thousands deep are refused as too
//! large.
//!
//! CI runs a bounded number of cases; a longer local run:
//!     TM_FUZZ_CASES=200000 TM_FUZZ_SEED=$RANDOM cargo test --release --test fuzz_abi

mod common;

use common::TestDb;
use serde_json::json;
use std::ffi::{CStr, c_char};
use std::ptr;
use taskmanager::ffi::*;

/// A small deterministic generator (xorshift64): a failing case is replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e309",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"3.5",
    b"\"\"",
    "é🐎".as_bytes(),
    b"\xff\xfe",
    b"\xc3",
    b" ",
    b"'; DROP TABLE tasks; --",
    b"%_!",
];

/// A random JSON value: the numbers, strings and shapes that edges are made of.
fn random_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    match rng.below(if depth > 2 { 7 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!([i64::MIN, -1, 0, 1, 7, 1000, i64::MAX][rng.below(7)]),
        3 => json!([u64::MAX as f64, 1e308, -0.5, 0.5, 2.0][rng.below(5)]),
        4 | 5 => {
            let text: String = (0..rng.below(6))
                .map(|_| String::from_utf8_lossy(PIECES[rng.below(PIECES.len())]).into_owned())
                .collect();
            Value::String(text)
        }
        6 => Value::String(
            ["fuzz.type", "pending", "active", "always", "tok.1", ""][rng.below(6)].into(),
        ),
        7 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|i| (format!("k{i}"), random_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// Replaces one value somewhere inside `value` (or drops or adds an object key): inputs that
/// stay valid JSON and reach the checks behind the parser.
fn mutate_structure(rng: &mut Rng, value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) if !map.is_empty() && rng.below(3) > 0 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[rng.below(keys.len())];
            match rng.below(5) {
                0 => {
                    map.remove(key);
                }
                1 => {
                    map.insert(format!("unknown_{}", rng.below(9)), random_value(rng, 0));
                }
                _ => mutate_structure(rng, map.get_mut(key).unwrap()),
            }
        }
        Value::Array(items) if !items.is_empty() && rng.below(3) > 0 => {
            let i = rng.below(items.len());
            mutate_structure(rng, &mut items[i]);
        }
        other => *other = random_value(rng, 0),
    }
}

fn mutate(rng: &mut Rng, seed: &[u8], max_payload: usize) -> Vec<u8> {
    if rng.below(2) == 0 {
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(seed) {
            for _ in 0..1 + rng.below(3) {
                mutate_structure(rng, &mut value);
            }
            let mut data = value.to_string().into_bytes();
            data.retain(|b| *b != 0);
            data.push(0);
            return data;
        }
    }
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(9) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => data
                .splice(at..at, PIECES[rng.below(PIECES.len())].iter().copied())
                .for_each(drop),
            2 if !data.is_empty() => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => data.truncate(at),
            4 if at < data.len() => {
                let end = (at + 1 + rng.below(32)).min(data.len());
                let piece = data[at..end].to_vec();
                data.splice(at..at, piece).for_each(drop);
            }
            5 => {
                // Nested thousands deep around the whole value.
                let depth = 1000 + rng.below(5000);
                let mut deep = vec![b'['; depth];
                deep.extend_from_slice(&data);
                deep.extend(std::iter::repeat_n(b']', depth));
                data = deep;
            }
            6 if rng.below(8) == 0 => {
                // Over the size limit.
                let filler = "x".repeat(max_payload + 1);
                data = format!("{{\"big\":\"{filler}\"}}").into_bytes();
            }
            _ => {
                let i = rng.below(data.len() + 1);
                data.insert(i, (rng.next() & 0xff) as u8);
            }
        }
    }
    // C strings end at the first NUL; keep the test's bytes honest about that.
    data.retain(|b| *b != 0);
    data.push(0);
    data
}

const DOCUMENTED: &[tm_code] = &[
    tm_code::TM_NULL_PARAMETER,
    tm_code::TM_INVALID_ARGUMENT,
    tm_code::TM_PAYLOAD_TOO_LARGE,
    tm_code::TM_CONFIG,
    tm_code::TM_NOT_FOUND,
    tm_code::TM_TYPE_INACTIVE,
    tm_code::TM_INVALID_SCHEMA,
    tm_code::TM_VALIDATION_FAILED,
    tm_code::TM_LEASE_LOST,
    tm_code::TM_CONFLICT,
    tm_code::TM_DATABASE,
];

/// Checks one call's outcome and frees what it returned; returns the error code (TM_OK on
/// success).
fn outcome(what: &str, input: &[u8], err: *mut tm_error, out: *mut c_char) -> tm_code {
    let shown = String::from_utf8_lossy(&input[..input.len().min(200)]).into_owned();
    // SAFETY: `err` and `out` come from the library and are freed exactly once here.
    unsafe {
        if err.is_null() {
            if !out.is_null() {
                let text = CStr::from_ptr(out).to_str().expect("outputs are UTF-8");
                serde_json::from_str::<serde_json::Value>(text)
                    .unwrap_or_else(|e| panic!("{what}: output is not JSON ({e}) for {shown:?}"));
                tm_string_free(out);
            }
            return tm_code::TM_OK;
        }
        assert!(out.is_null(), "{what}: an output was written on error");
        let code = tm_error_code(err);
        let message = CStr::from_ptr(tm_error_message(err))
            .to_str()
            .unwrap()
            .to_owned();
        tm_error_free(err);
        assert!(
            DOCUMENTED.contains(&code),
            "{what}: {code:?} ({message}) for {shown:?}"
        );
        assert!(!message.is_empty(), "{what}: an error without a message");
        code
    }
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fuzz/corpus/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("corpus file {name}.json: {e}"))
}

#[test]
fn every_json_input_of_the_abi_survives_mutation() {
    let cases: usize = std::env::var("TM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let seed: u64 = std::env::var("TM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_ef01);
    let max_payload = 4096;
    let db = TestDb::server(json!({}));
    let (host, port, user, pass) = common::server();
    let config = format!(
        "{}\0",
        json!({"db_host": host, "db_port": port, "db_user": user, "db_pass": pass,
            "db_name": db.name, "max_payload_bytes": max_payload})
    );
    let mut client: *mut tm_client = ptr::null_mut();
    // SAFETY: a NUL-terminated config and an out-pointer.
    let err = unsafe { tm_client_open(config.as_ptr().cast(), &mut client) };
    assert!(err.is_null(), "the fuzz client must open");
    let client = client as *const tm_client;
    // A registered type and a claimed task, so mutated inputs can reach the deep paths.
    let type_json = corpus("type");
    // SAFETY: valid pointers; outputs not needed.
    unsafe {
        let mut t = type_json.clone();
        t.push(0);
        assert!(tm_type_register(client, t.as_ptr().cast(), ptr::null_mut()).is_null());
    }

    let mut rng = Rng(seed);
    let mut refused_as_too_large = 0;
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    for case in 0..cases {
        let targets = [
            "config",
            "type",
            "params",
            "enqueue_options",
            "batch_enqueue",
            "claim_options",
            "heartbeat_options",
            "result",
            "fail_options",
            "batch_complete",
            "list_filter",
        ];
        let target = targets[rng.below(targets.len())];
        let seed_text = corpus(match target {
            "config" if rng.below(2) == 0 => "config_url",
            other => other,
        });
        let input = mutate(&mut rng, &seed_text, max_payload);
        let text = input.as_ptr() as *const c_char;
        let mut out: *mut c_char = ptr::null_mut();
        let what = format!("case {case} (seed {seed}), {target}");
        // SAFETY: every pointer is valid and NUL-terminated; outputs are checked and freed by
        // `outcome`.
        let code = unsafe {
            let name = c"fuzz.type".as_ptr();
            let worker = c"fuzzer".as_ptr();
            let token = c"tok.1".as_ptr();
            match target {
                "config" => {
                    let body = std::str::from_utf8(&input[..input.len() - 1]).ok();
                    // The parser tm_client_open uses, without connecting anywhere.
                    match taskmanager::Config::from_json_text(body) {
                        Ok(_) => tm_code::TM_OK,
                        Err(e) => {
                            assert_ne!(e.code(), taskmanager::Code::Panic, "{what}");
                            tm_code::TM_CONFIG
                        }
                    }
                }
                "type" => outcome(&what, &input, tm_type_register(client, text, &mut out), out),
                "params" => outcome(
                    &what,
                    &input,
                    tm_task_enqueue(client, name, text, ptr::null(), &mut out),
                    out,
                ),
                "enqueue_options" => {
                    let params = c"{\"to\":\"z@x\"}".as_ptr();
                    outcome(
                        &what,
                        &input,
                        tm_task_enqueue(client, name, params, text, &mut out),
                        out,
                    )
                }
                "batch_enqueue" => outcome(
                    &what,
                    &input,
                    tm_task_enqueue_batch(client, text, &mut out),
                    out,
                ),
                "claim_options" => outcome(
                    &what,
                    &input,
                    tm_task_claim(client, worker, text, &mut out),
                    out,
                ),
                "heartbeat_options" => outcome(
                    &what,
                    &input,
                    tm_task_heartbeat(client, 1, token, text, &mut out),
                    out,
                ),
                "result" => outcome(
                    &what,
                    &input,
                    tm_task_complete(client, 1, token, text, &mut out),
                    out,
                ),
                "fail_options" => outcome(
                    &what,
                    &input,
                    tm_task_fail(client, 1, token, c"boom".as_ptr(), text, &mut out),
                    out,
                ),
                "batch_complete" => outcome(
                    &what,
                    &input,
                    tm_task_complete_batch(client, text, &mut out),
                    out,
                ),
                _ => outcome(&what, &input, tm_task_list(client, text, &mut out), out),
            }
        };
        *seen.entry(format!("{target} {code:?}")).or_default() += 1;
        // A payload over the limit, or nested thousands deep, is refused as too large (or as
        // not JSON at all when the mutation also broke its syntax).
        let depth = input.iter().take_while(|b| **b == b'[').count();
        if target != "config" && (depth >= 1000 || input.len() > max_payload * 16) {
            assert!(
                matches!(
                    code,
                    tm_code::TM_PAYLOAD_TOO_LARGE | tm_code::TM_INVALID_ARGUMENT
                ),
                "{what}: {code:?} for a payload {} bytes long, {depth} deep",
                input.len()
            );
            if code == tm_code::TM_PAYLOAD_TOO_LARGE {
                refused_as_too_large += 1;
            }
        }
    }
    // SAFETY: opened above, freed once.
    unsafe { tm_client_free(client as *mut tm_client) };
    eprintln!("{cases} cases (seed {seed}): {seen:?}");
    assert!(
        refused_as_too_large > 0 || cases < 100,
        "no oversized or deep payload was generated in {cases} cases"
    );
}
