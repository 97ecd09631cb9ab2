//! Parity of the readers and writers with 6.0.2's. Every expected value below was read
//! off the real thing: PyYAML 6.0.4 `safe_load`, python-dotenv 1.2.4 `dotenv_values`,
//! Python 3.11 `json.loads`, each followed by 6.0.2's `stringify_value` (the text an
//! environment variable gets; ours is `env_text`), in `/tmp/pw602/venv`.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::{Format, env_text, python_json, serialize};

/// `k: <scalar>` through the YAML reader, as the variable's text; `None` for an error.
fn yaml_env(scalar: &str) -> Option<String> {
    Format::Yaml
        .parse(&format!("k: {scalar}"))
        .ok()
        .map(|v| env_text(&v["k"]))
}

#[test]
fn yaml_1_1_scalars_read_like_pyyaml_safe_load() {
    // (plain scalar, 6.0.2's variable text or None where safe_load raises), read off
    // PyYAML 6.0.4 safe_load + proc_wrapper 6.0.2 stringify_value.
    let cases: &[(&str, Option<&str>)] = &[
        // Booleans: three spellings each of yes/no/true/false/on/off, nothing else.
        ("yes", Some("TRUE")),
        ("Yes", Some("TRUE")),
        ("YES", Some("TRUE")),
        ("yEs", Some("yEs")),
        ("y", Some("y")),
        ("n", Some("n")),
        ("no", Some("FALSE")),
        ("No", Some("FALSE")),
        ("NO", Some("FALSE")),
        ("True", Some("TRUE")),
        ("tRue", Some("tRue")),
        ("FALSE", Some("FALSE")),
        ("on", Some("TRUE")),
        ("On", Some("TRUE")),
        ("ON", Some("TRUE")),
        ("oN", Some("oN")),
        ("off", Some("FALSE")),
        ("Off", Some("FALSE")),
        ("OFF", Some("FALSE")),
        // Null.
        ("~", Some("")),
        ("null", Some("")),
        ("Null", Some("")),
        ("NULL", Some("")),
        ("nUll", Some("nUll")),
        ("", Some("")),
        // Integers: octal with a leading 0, 0b, 0x, `_`, base 60, signs, any size.
        ("0777", Some("511")),
        ("+0777", Some("511")),
        ("0", Some("0")),
        ("00", Some("0")),
        ("0_", Some("0")),
        ("-0", Some("0")),
        ("08", Some("08")),
        ("0o17", Some("0o17")),
        ("0b101", Some("5")),
        ("-0b101", Some("-5")),
        ("0x1F", Some("31")),
        ("-0x1F", Some("-31")),
        ("0xff_ff", Some("65535")),
        ("1_000", Some("1000")),
        ("-1_000", Some("-1000")),
        ("+12", Some("12")),
        ("12:30", Some("750")),
        ("190:20:30", Some("685230")),
        ("-1:30", Some("-90")),
        ("1:5", Some("65")),
        ("1:60", Some("1:60")),
        ("09:30", Some("09:30")),
        ("0:30", Some("0:30")),
        ("1_2:3_0", Some("1_2:3_0")),
        ("12345678901234567890", Some("12345678901234567890")),
        (
            "123456789012345678901234567890",
            Some("123456789012345678901234567890"),
        ),
        ("-12345678901234567890", Some("-12345678901234567890")),
        ("0x123456789abcdef0123", Some("5373003642731685151011")),
        ("0x_", None),
        ("0b_", None),
        // Floats need a dot; an exponent needs its sign; Python prints them.
        ("1e3", Some("1e3")),
        ("1e-5", Some("1e-5")),
        ("1e400", Some("1e400")),
        ("1.0e3", Some("1.0e3")),
        ("1.0e+3", Some("1000.0")),
        ("1.e+3", Some("1000.0")),
        ("1.", Some("1.0")),
        ("3.", Some("3.0")),
        ("1.5", Some("1.5")),
        (".5", Some("0.5")),
        ("00.5", Some("0.5")),
        ("-.5", Some("-.5")),
        ("+.5", Some("+.5")),
        ("1_000.5", Some("1000.5")),
        ("1__0.0_", Some("10.0")),
        ("0.1", Some("0.1")),
        ("0.00001", Some("1e-05")),
        ("0.0001", Some("0.0001")),
        ("1.5e+20", Some("1.5e+20")),
        ("1.0e+16", Some("1e+16")),
        ("1.0e+15", Some("1000000000000000.0")),
        ("123456789.123456789", Some("123456789.12345679")),
        ("-0.0", Some("-0.0")),
        ("190:20:30.15", Some("685230.15")),
        ("1:30.5", Some("90.5")),
        (".inf", Some("inf")),
        ("-.inf", Some("-inf")),
        ("+.inf", Some("inf")),
        (".Inf", Some("inf")),
        (".INF", Some("inf")),
        (".nan", Some("nan")),
        (".NaN", Some("nan")),
        ("-.nan", Some("-.nan")),
        ("inf", Some("inf")),
        ("nan", Some("nan")),
        // Timestamps: what Python's str() of the date/datetime gives.
        ("2001-12-14", Some("2001-12-14")),
        (
            "2001-12-14 21:59:43.10 -5",
            Some("2001-12-14 21:59:43.100000-05:00"),
        ),
        (
            "2001-12-14t21:59:43.10-05:00",
            Some("2001-12-14 21:59:43.100000-05:00"),
        ),
        ("2001-12-14T21:59:43Z", Some("2001-12-14 21:59:43+00:00")),
        ("2001-1-4 1:02:03", Some("2001-01-04 01:02:03")),
        (
            "2001-12-14 21:59:43.1234567 +5:30",
            Some("2001-12-14 21:59:43.123456+05:30"),
        ),
        ("2001-02-30", None),
        ("2001-12-14 25:00:00", None),
        ("2001-12-14 1:00:00 +24", None),
        // Quoted scalars stay strings; `!` resolves as if plain; explicit tags.
        ("'yes'", Some("yes")),
        ("\"0777\"", Some("0777")),
        ("! 123", Some("123")),
        ("! 'yes'", Some("TRUE")),
        ("!!str 123", Some("123")),
        ("!!str", Some("")),
        ("!!int '12'", Some("12")),
        ("!!int ' 12 '", Some("12")),
        ("!!int 0o17", Some("15")),
        ("!!int", None),
        ("!!float 1", Some("1.0")),
        ("!!float 1e3", Some("1000.0")),
        ("!!float inf", Some("inf")),
        ("!!float '1_0'", Some("10.0")),
        ("!!bool yes", Some("TRUE")),
        ("!!bool y", None),
        ("!!null foo", Some("")),
        ("!!timestamp 2001-12-14", Some("2001-12-14")),
        ("!!binary aGVsbG8=", Some("b'hello'")),
        ("!!binary aGVsbG8", None),
        // Neither a plain `=` nor `<<` is a value for safe_load.
        ("=", None),
        ("<<", None),
        ("!!merge x", None),
        ("!custom x", None),
        ("!!map x", None),
        ("0x", Some("0x")),
        ("+", Some("+")),
        (".", Some(".")),
    ];
    for (scalar, expected) in cases {
        assert_eq!(
            yaml_env(scalar).as_deref(),
            *expected,
            "k: {scalar} (PyYAML 6.0.4 safe_load → 6.0.2 stringify_value)"
        );
    }
    // The types behind the text, as JSON has them.
    let v = Format::Yaml
        .parse("a: yes\nb: 0777\nc: 1e3\nd: 1.0e+3\ne: ~\nf: .inf\n")
        .unwrap();
    assert_eq!(
        v,
        json!({"a": true, "b": 511, "c": "1e3", "d": 1000.0, "e": null, "f": "inf"})
    );
}

#[test]
fn yaml_documents_read_like_pyyaml_safe_load() {
    // (document, 6.0.2's text for the whole value as a variable (Python-style JSON), or
    // None where safe_load raises), read off PyYAML 6.0.4.
    let cases: &[(&str, Option<&str>)] = &[
        ("a: 1\na: 2\nb: 3", Some(r#"{"a": 2, "b": 3}"#)),
        (
            "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n  z: 4",
            Some(r#"{"base": {"x": 1, "y": 2}, "d": {"x": 1, "y": 3, "z": 4}}"#),
        ),
        (
            "d:\n  y: 0\n  <<: {y: 1, x: 1}",
            Some(r#"{"d": {"y": 0, "x": 1}}"#),
        ),
        // PyYAML 6.0.4 merges a list in order and drops a pair whose key is the same
        // Python object as an earlier one: one-character keys keep the first mapping's
        // value, longer keys the last's.
        (
            "A: &A {a: 1, c: 1}\nB: &B {b: 2, c: 2}\nd:\n  <<: [*A, *B]\n  e: 5",
            Some(
                r#"{"A": {"a": 1, "c": 1}, "B": {"b": 2, "c": 2}, "d": {"a": 1, "c": 1, "b": 2, "e": 5}}"#,
            ),
        ),
        (
            "A: &A {cc: 1, long_key: 1}\nB: &B {cc: 2, long_key: 2}\nd:\n  <<: [*A, *B]",
            Some(
                r#"{"A": {"cc": 1, "long_key": 1}, "B": {"cc": 2, "long_key": 2}, "d": {"cc": 2, "long_key": 2}}"#,
            ),
        ),
        ("d:\n  <<: [{a: 1}, {a: 2}]\n", Some(r#"{"d": {"a": 1}}"#)),
        (
            "d:\n  <<: [{aa: 1}, {aa: 2}]\n",
            Some(r#"{"d": {"aa": 2}}"#),
        ),
        (
            "A: &A {cc: 1}\nd:\n  <<: *A\n  <<: {cc: 3}\n",
            Some(r#"{"A": {"cc": 1}, "d": {"cc": 3}}"#),
        ),
        (
            "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: [*b, *a], z: 3}",
            Some(r#"{"a": {"x": 1}, "b": {"x": 1, "y": 2}, "c": {"x": 1, "y": 2, "z": 3}}"#),
        ),
        ("d: {'<<': {a: 1}}", Some(r#"{"d": {"<<": {"a": 1}}}"#)),
        ("d: {<<: 1}", None),
        ("d: {<<: [1]}", None),
        ("d: {=: 1}", Some(r#"{"d": {"=": 1}}"#)),
        ("a: &x 1\nb: *x", Some(r#"{"a": 1, "b": 1}"#)),
        ("a: &x 1\nb: &x 2\nc: *x", None),
        ("a: *nope", None),
        ("--- 1\n--- 2", None),
        ("k: 1\n--- \nk: 2", None),
        ("---\na: 1\n...\n", Some(r#"{"a": 1}"#)),
        ("", Some("")),
        ("# only a comment", Some("")),
        ("!!omap [a: 1, b: 2]", Some(r#"[["a", 1], ["b", 2]]"#)),
        ("!!pairs [a: 1, a: 2]", Some(r#"[["a", 1], ["a", 2]]"#)),
        ("!!omap [a, b]", None),
        (
            "{1: a, 2.5: b, true: c, null: d, ~: e}",
            Some(r#"{"1": "c", "2.5": "b", "null": "e"}"#),
        ),
        ("{1: a, 1.0: b}", Some(r#"{"1": "b"}"#)),
        ("{[1]: a}", None),
        ("? [a]\n: 1", None),
        ("a: !!str {b: 1}", None),
        ("a: !<tag:yaml.org,2002:int> 12", Some(r#"{"a": 12}"#)),
        (
            "%TAG !e! tag:yaml.org,2002:\n---\na: !e!int 12",
            Some(r#"{"a": 12}"#),
        ),
        ("a: |\n  yes\n", Some(r#"{"a": "yes\n"}"#)),
        ("a: >-\n  0777\n", Some(r#"{"a": "0777"}"#)),
        ("a: b\n  c", Some(r#"{"a": "b c"}"#)),
        ("a:\n- 1\n- on", Some(r#"{"a": [1, true]}"#)),
        ("\u{feff}a: 1", Some(r#"{"a": 1}"#)),
        ("a: \"\\x41\\u00e9\"", Some(r#"{"a": "A\u00e9"}"#)),
        (
            "a: {b: é, c: [1.5, 1e3]}",
            Some(r#"{"a": {"b": "\u00e9", "c": [1.5, "1e3"]}}"#),
        ),
        ("%YAML 1.2\n---\na: yes", Some(r#"{"a": true}"#)),
        ("- 1", Some("[1]")),
        // PyYAML skips only spaces between tokens: tabs there are errors.
        ("a:\tb", None),
        ("k: a\tb", None),
        ("k: a\t", None),
        ("[1,\t2]", None),
        ("\tk: a", None),
        ("k: a # c\t", Some(r#"{"k": "a"}"#)),
        ("k: |\n  a\tb\n", Some(r#"{"k": "a\tb\n"}"#)),
        ("k: \"a\tb\"", Some(r#"{"k": "a\tb"}"#)),
        ("# c\t\nk: 1", Some(r#"{"k": 1}"#)),
    ];
    for (doc, expected) in cases {
        let got = Format::Yaml.parse(doc).ok().map(|v| env_text(&v));
        assert_eq!(got.as_deref(), *expected, "{doc:?}");
    }
}

#[test]
fn yaml_refuses_what_cannot_be_held() {
    // A recursive alias (PyYAML builds a list that contains itself; 6.0.2 then fails to
    // write it as JSON).
    assert!(Format::Yaml.parse("a: &r [1, *r]").is_err());
    // Exponential aliases ("billion laughs") stop instead of eating memory.
    let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        doc.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let err = Format::Yaml.parse(&doc).unwrap_err().to_string();
    assert!(err.contains("too many"), "{err}");
    // The same through merges of merges.
    let mut doc = String::from("m0: &m0 {k: v}\n");
    for i in 1..40 {
        let p = i - 1;
        doc.push_str(&format!("m{i}: &m{i} {{<<: [*m{p}, *m{p}], k{i}: v}}\n"));
    }
    let started = std::time::Instant::now();
    let err = Format::Yaml.parse(&doc).unwrap_err().to_string();
    assert!(err.contains("too many"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // Deep nesting is refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Format::Yaml.parse(&deep).is_err());
    assert!(Format::Json.parse(&deep).is_err());
}

#[test]
fn yaml_errors_never_quote_the_text() {
    for (text, position) in [
        ("a: !!int hunter2\n", "line 1 column 4"),
        ("a: !!float hunter2\n", "line 1 column 4"),
        ("b: 1\na: !!bool hunter2\n", "line 2 column 4"),
        ("a: !!timestamp hunter2\n", "line 1 column 4"),
        ("a: !!binary hunter2é\n", "line 1 column 4"),
        ("a: !hunter2 x\n", "line 1 column 4"),
        ("a: hunter2\tx\n", "line 1 column 11"),
    ] {
        let err = Format::Yaml.parse(text).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{text:?}: {err}");
        assert!(err.contains(position), "{text:?}: {err}");
    }
}

#[test]
fn yaml_written_reads_back_the_same() {
    let strings = [
        "yes",
        "On",
        "0777",
        "12:30",
        "1e3",
        "~",
        "",
        "null",
        "<<",
        "=",
        "2001-12-14",
        "1.5",
        "1_000",
        " a ",
        "a: b",
        "#x",
        "- x",
        "it's \"q\"",
        "a\nb\r\n",
        "a\tb",
        "é✓😀",
        "\u{1}\u{7f}\u{85}\u{2028}",
        "inf",
        "hello world",
        "/usr/bin/x-y_z.1",
    ];
    let mut map = serde_json::Map::new();
    for (i, s) in strings.iter().enumerate() {
        map.insert(format!("s{i}"), json!(s));
        // The same texts as keys.
        map.insert((*s).to_owned(), json!(i));
    }
    let others = json!({
        "n": null, "t": true, "f": false, "i": 12, "neg": -3, "big": 12345678901234567890u64,
        "fl": 1000.0, "small": 1e-5, "huge": 1.5e20, "e16": 1e16, "negzero": -0.0,
        "list": [1, "no", [], {}, [2, [3]], {"k": "v", "l": [1]}],
        "map": {"inner": {"deeper": "OFF"}, "empty": {}},
    });
    map.extend(others.as_object().unwrap().clone());
    map.insert("k".repeat(1500), json!("long key"));
    // Under 1024 characters but over 1024 bytes once written (found by the fuzzer).
    map.insert(format!("S1{}", "\u{0}é".repeat(300)), json!(null));
    let value = Value::Object(map);
    let text = serialize(&value, Format::Yaml).unwrap();
    assert_eq!(Format::Yaml.parse(&text).unwrap(), value, "{text}");
    // Quoted as PyYAML quotes them (single quotes, when nothing needs escapes).
    for s in ["yes", "0777", "12:30", "1e3", "~", "<<", "="] {
        assert!(text.contains(&format!("'{s}'")), "{s} not quoted in {text}");
    }
    assert!(text.contains("small: 1.0e-05\n"), "{text}");
    assert!(text.contains("s23: hello world\n"), "{text}");
    let list = serialize(&json!([{"a": 1, "b": [1, 2]}, [3]]), Format::Yaml).unwrap();
    assert_eq!(list, "- a: 1\n  b:\n  - 1\n  - 2\n- - 3\n");
    assert_eq!(serialize(&json!("yes"), Format::Yaml).unwrap(), "'yes'\n");
    // As PyYAML's `dump` writes them (with `allow_unicode` off).
    assert_eq!(
        serialize(
            &json!({"PATH": "/a:/b", "T": "TRUE", "E": "", "H": "#x", "C": "a: b", "U": "é"}),
            Format::Yaml
        )
        .unwrap(),
        "C: 'a: b'\nE: ''\nH: '#x'\nPATH: /a:/b\nT: 'TRUE'\nU: \"\\xE9\"\n"
    );
    assert_eq!(serialize(&json!({}), Format::Yaml).unwrap(), "{}\n");
}

#[test]
fn dotenv_reads_like_python_dotenv() {
    // (text, dotenv_values result), read off python-dotenv 1.2.4 with PW_FROM_OS=osval and
    // PW_BOTH=os in the process environment.
    let environ = |name: &str| match name {
        "PW_FROM_OS" => Some("osval".to_owned()),
        "PW_BOTH" => Some("os".to_owned()),
        _ => None,
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "A=1\nexport B=2\nexport  C = 3 \n",
            json!({"A": "1", "B": "2", "C": "3"}),
        ),
        (
            "A='a b'\nB=\"x\\ny\"\nC='x\\ny'\nD=\"q\\\"q\"\nE='it\\'s'\nF=\"\\u00e9\\t|\"",
            json!({"A": "a b", "B": "x\ny", "C": "x\\ny", "D": "q\"q", "E": "it's", "F": "\\u00e9\t|"}),
        ),
        (
            "A=x #c\nB=x#c\nC= #c\nD=#c\nE=\"v\" #c\nF='v'#c\nG=\"v\"junk\nH=2",
            json!({"A": "x", "B": "x#c", "C": "", "D": "#c", "E": "v", "F": "v", "H": "2"}),
        ),
        (
            "A\nB=\nC=  \nD\t# c\n",
            json!({"A": null, "B": "", "C": "", "D": null}),
        ),
        ("A='unterminated\nB=2\n", json!({"B": "2"})),
        (
            "A=\"multi\nline\"\nB=2",
            json!({"A": "multi\nline", "B": "2"}),
        ),
        (
            "A=${PW_FROM_OS}\nB=${A}-${NOPE:-dflt}-${NOPE}\nC='${A}'\nD=$A\nE=\"${PW_BOTH}\"\n\
             PW_BOTH=file\nF=${PW_BOTH}\nG=${A:-x}",
            json!({"A": "osval", "B": "osval-dflt-", "C": "osval", "D": "$A", "E": "os",
                   "PW_BOTH": "file", "F": "file", "G": "osval"}),
        ),
        (
            "'quoted key'=1\n'q'=2\n  =3\n#A=1\n # x=1\nK = v\nK2 =\n",
            json!({"quoted key": "1", "q": "2", "K": "v", "K2": ""}),
        ),
        ("A=1\nA=2\n", json!({"A": "2"})),
        ("\u{feff}A=1", json!({"A": "1"})),
        ("A=1\r\nB=2\rC=3", json!({"A": "1", "B": "2", "C": "3"})),
        (
            "A=a\\b\nB=\"a\\\\b\"\nC=\"a\\zb\"",
            json!({"A": "a\\b", "B": "a\\b", "C": "a\\zb"}),
        ),
        ("A=x\u{a0}#c\nB=é #x", json!({"A": "x", "B": "é"})),
        ("A=${B}\nB=1\n", json!({"A": "", "B": "1"})),
        ("export\nexport=1\n", json!({"export": "1"})),
        ("A=\"x\" \t\nB='y'  # cmt\n", json!({"A": "x", "B": "y"})),
        ("A= 'x'\nB=  \"y\"", json!({"A": "x", "B": "y"})),
        (
            "A=${}\nB=${:-d}\nC=${X:-}\nD=${X:-a}b}",
            json!({"A": "", "B": "d", "C": "", "D": "ab}"}),
        ),
    ];
    for (text, expected) in cases {
        let got = Value::Object(super::dotenv::parse_with(text, environ));
        assert_eq!(got, expected, "{text:?}");
    }
    // A key without `=` is null, which 6.0.2 puts in the environment as an empty value.
    assert_eq!(env_text(&Format::Dotenv.parse("A\n").unwrap()["A"]), "");
}

#[test]
fn json_reads_like_python_json_loads() {
    // (text, value of "a" as 6.0.2's variable text, or None for an error), read off
    // Python 3.11 json.loads + stringify_value.
    let cases: &[(&str, Option<&str>)] = &[
        (r#"{"a": NaN}"#, Some("nan")),
        (r#"{"a": Infinity}"#, Some("inf")),
        (r#"{"a": -Infinity}"#, Some("-inf")),
        (r#"{"a": 1, "b": 2, "a": 3}"#, Some("3")),
        (
            r#"{"a": 12345678901234567890}"#,
            Some("12345678901234567890"),
        ),
        (
            r#"{"a": 123456789012345678901234567890}"#,
            Some("123456789012345678901234567890"),
        ),
        (
            r#"{"a": -123456789012345678901234567890}"#,
            Some("-123456789012345678901234567890"),
        ),
        (r#"{"a": 9007199254740993}"#, Some("9007199254740993")),
        (r#"{"a": 1e400}"#, Some("inf")),
        (r#"{"a": -1e400}"#, Some("-inf")),
        (r#"{"a": 1e3}"#, Some("1000.0")),
        (r#"{"a": 1E-5}"#, Some("1e-05")),
        (r#"{"a": 2.5e-5}"#, Some("2.5e-05")),
        (r#"{"a": -0}"#, Some("0")),
        (r#"{"a": -0.0}"#, Some("-0.0")),
        (r#"{"a": 1.0}"#, Some("1.0")),
        (r#"{"a": 1.5e300}"#, Some("1.5e+300")),
        (r#"{"a": 100000000000000000000.0}"#, Some("1e+20")),
        (
            r#"{"a": 1.7976931348623157e308}"#,
            Some("1.7976931348623157e+308"),
        ),
        (r#"{"a": 5e-324}"#, Some("5e-324")),
        (r#"{"a": "\u00e9"}"#, Some("é")),
        (r#"{"a": "\ud83d\ude00"}"#, Some("😀")),
        (r#"{"a": [1, {"b": null}]}"#, Some(r#"[1, {"b": null}]"#)),
        ("\u{feff}{\"a\": 1}", None),
        (r#"{"a": 1} "#, Some("1")),
        (r#"{"a": 1}x"#, None),
        (r#"{"a": [1,]}"#, None),
        (r#"{"a": 01}"#, None),
        (r#"{"a": .5}"#, None),
        (r#"{"a": nan}"#, None),
        (r#"{"a": 1.}"#, None),
        ("{\"a\":\"\u{1}\"}", None),
        ("  \n{\"a\":1}\n\t", Some("1")),
    ];
    for (text, expected) in cases {
        let got = Format::Json.parse(text).ok().map(|v| env_text(&v["a"]));
        assert_eq!(got.as_deref(), *expected, "{text}");
    }
    assert_eq!(Format::Json.parse(r#""x""#).unwrap(), json!("x"));
    let err = Format::Json
        .parse(r#"{"a": hunter2}"#)
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("hunter2") && err.contains("line 1 column 7"),
        "{err}"
    );
}

#[test]
fn json_writes_like_python_json_dumps() {
    // Python 3.11 json.dumps (ensure_ascii, default separators, float repr).
    assert_eq!(
        python_json(
            &json!({"a": "é\u{2028}\u{7f}\u{1}", "b": [1000.0, 1e-5, 1.5e20, 1], "c": "😀"})
        ),
        r#"{"a": "\u00e9\u2028\u007f\u0001", "b": [1000.0, 1e-05, 1.5e+20, 1], "c": "\ud83d\ude00"}"#
    );
    assert_eq!(
        python_json(&json!({"q": "\"\\\n\r\t\u{8}\u{c}/"})),
        r#"{"q": "\"\\\n\r\t\b\f/"}"#
    );
    assert_eq!(env_text(&json!(1e-5)), "1e-05");
    assert_eq!(env_text(&json!(1000.0)), "1000.0");
    assert_eq!(
        env_text(&json!(12345678901234567890u64)),
        "12345678901234567890"
    );
}
