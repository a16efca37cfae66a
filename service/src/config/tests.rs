//! The configuration's tests: layering, errors that name the variable or the
//! setting, validation, and the README's table of every setting.

use super::layers::{SECTIONS, key_of_env};
use super::*;

#[test]
fn a_file_overrides_only_what_it_names() {
    let config = Config::from_toml("budget_ms = 50\n[actors]\narbiters = 4\n").expect("valid");
    assert_eq!(config.budget_ms, 50);
    assert_eq!(config.actors.arbiters, 4);
    assert_eq!(config.actors.mailbox_capacity, 64);
    assert_eq!(config.limits.max_candidates, 1_000);
    config.validate().expect("valid");
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let error = Config::from_toml("budget = 5\n").expect_err("unknown key");
    assert!(
        error.contains("line 1") && error.contains("budget"),
        "{error}"
    );
    let config = Config {
        budget_ms: 0,
        ..Config::default()
    };
    let error = config.validate().expect_err("out of range").to_string();
    assert!(error.contains("budget_ms"), "{error}");
}

fn invalid_field(config: &Config) -> &'static str {
    match config.validate() {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid setting, got {other:?}"),
    }
}

#[test]
fn storage_bounds_out_of_range_name_the_setting() {
    let storage = |journal_records, max_batch_writes| Config {
        storage: StorageConfig {
            journal_records,
            max_batch_writes,
            ..StorageConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(invalid_field(&storage(0, 4_096)), "storage.journal_records");
    assert_eq!(
        invalid_field(&storage(20_000_000, 4_096)),
        "storage.journal_records"
    );
    assert_eq!(
        invalid_field(&storage(1_000, 0)),
        "storage.max_batch_writes"
    );
    assert!(storage(1, 1).validate().is_ok());
    for (checkpoint_interval_ms, valid) in
        [(0, false), (1, true), (600_000, true), (600_001, false)]
    {
        let config = Config {
            storage: StorageConfig {
                checkpoint_interval_ms,
                ..StorageConfig::default()
            },
            ..Config::default()
        };
        match valid {
            true => assert!(config.validate().is_ok()),
            false => assert_eq!(invalid_field(&config), "storage.checkpoint_interval_ms"),
        }
    }
    let interval = |commit_interval_us| Config {
        storage: StorageConfig {
            commit_interval_us,
            ..StorageConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(
        invalid_field(&interval(100_001)),
        "storage.commit_interval_us"
    );
    assert!(interval(100_000).validate().is_ok());
}

#[test]
fn bad_security_combinations_name_the_setting() {
    let path = |name: &str| Some(PathBuf::from(name));
    let key_only = Config {
        tls: TlsConfig {
            key: path("server.key"),
            ..TlsConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(invalid_field(&key_only), "tls.key");
    let cert_only = Config {
        tls: TlsConfig {
            cert: path("server.pem"),
            ..TlsConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(invalid_field(&cert_only), "tls.cert");
    let ca_only = Config {
        tls: TlsConfig {
            client_ca: path("ca.pem"),
            ..TlsConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(invalid_field(&ca_only), "tls.client_ca");
    let unreadable = Config {
        tls: TlsConfig {
            cert: path("/nonexistent/nudge/server.pem"),
            key: path("/nonexistent/nudge/server.key"),
            client_ca: None,
        },
        ..Config::default()
    };
    assert_eq!(invalid_field(&unreadable), "tls.cert");
    let token_file = Config {
        auth: AuthConfig {
            token: None,
            token_file: path("/nonexistent/nudge/token"),
        },
        ..Config::default()
    };
    let error = token_file.validate().expect_err("unreadable").to_string();
    assert!(
        error.contains("auth.token_file") && error.contains("/nonexistent/nudge/token"),
        "{error}"
    );
    let both = Config {
        auth: AuthConfig {
            token: Some(Secret::new("abc")),
            token_file: path("token"),
        },
        ..Config::default()
    };
    assert_eq!(invalid_field(&both), "auth.token_file");
    let spaced = Config {
        auth: AuthConfig {
            token: Some(Secret::new("two words")),
            token_file: None,
        },
        ..Config::default()
    };
    let error = spaced.validate().expect_err("a space").to_string();
    assert!(
        error.contains("auth.token") && !error.contains("two words"),
        "{error}"
    );
}

#[test]
fn the_token_file_is_trimmed_and_the_token_never_shown() {
    let path = std::env::temp_dir().join(format!("nudge-token-{}", std::process::id()));
    std::fs::write(&path, "s3cret-token\n").expect("write the token file");
    let config = Config::from_toml(&format!(
        "[auth]\ntoken_file = {:?}\n",
        path.display().to_string()
    ))
    .expect("valid");
    config.validate().expect("a readable token file");
    let token = config.auth_token().expect("readable").expect("a token");
    assert_eq!(token.expose(), "s3cret-token");
    let _ = std::fs::remove_file(&path);
    let config = Config::from_toml("[auth]\ntoken = \"s3cret-token\"\n").expect("valid");
    assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
    let error = Config::from_toml("[tls]\ncertificate = \"x\"\n").expect_err("unknown key");
    assert!(error.contains("certificate"), "{error}");
}

#[test]
fn metrics_listen_is_an_address_or_off() {
    assert_eq!(
        Config::default().metrics_listen.to_string(),
        "127.0.0.1:9464"
    );
    let config = Config::from_toml("metrics_listen = \"0.0.0.0:9100\"\n").expect("valid");
    assert_eq!(
        config.metrics_listen,
        Listen::On("0.0.0.0:9100".parse().expect("an address"))
    );
    let config = Config::from_toml("metrics_listen = \"off\"\n").expect("valid");
    assert_eq!(config.metrics_listen, Listen::Off);
    let error = Config::from_toml("metrics_listen = \"nowhere\"\n").expect_err("invalid");
    assert!(
        error.contains("line 1") && error.contains("'nowhere'"),
        "{error}"
    );
}

/// A config file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("nudge-config-{tag}-{}.toml", std::process::id()));
        std::fs::write(&path, text).expect("write the config file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn set(key: &str, value: &str) -> (String, String) {
    (key.to_owned(), value.to_owned())
}

#[test]
fn flags_override_the_environment_which_overrides_the_file() {
    let file = TempFile::new(
        "layers",
        "budget_ms = 50\nlog_format = \"text\"\n[actors]\narbiters = 4\nmax_live_customers = 7\n",
    );
    let env = [
        ("NUDGE_BUDGET_MS", "60"),
        ("NUDGE_ACTORS_MAX_LIVE_CUSTOMERS", "10"),
        ("NUDGE_LOG_FORMAT", "json"),
        ("NUDGE_GRPC_MAX_CONCURRENT_REQUESTS", "8"),
        // Not settings: the client's options, and other programs' variables.
        ("NUDGE_SERVER", "http://elsewhere:1"),
        ("NUDGE_CONFIG", "/ignored.toml"),
        ("PATH", "/usr/bin"),
    ];
    let config = Config::load(
        Some(&file.0),
        env,
        &[set("budget_ms", "70"), set("grpc.max_connections", "9")],
    )
    .expect("valid layers");
    assert_eq!(config.budget_ms, 70, "--set beats env and file");
    assert_eq!(config.actors.max_live_customers, 10, "env beats file");
    assert_eq!(config.log_format, LogFormat::Json, "env beats file");
    assert_eq!(config.actors.arbiters, 4, "the file beats the default");
    assert_eq!(config.actors.mailbox_capacity, 64, "the default");
    assert_eq!(config.grpc.max_concurrent_requests, 8);
    assert_eq!(config.grpc.max_connections, 9);
    config.validate().expect("valid");
    let defaults = Config::load(None, [("HOME", "/root")], &[]).expect("defaults");
    assert_eq!(defaults.budget_ms, Config::default().budget_ms);
}

#[test]
fn string_settings_take_values_that_look_like_numbers() {
    let config = Config::load(
        None,
        [
            ("NUDGE_AUTH_TOKEN", "12345"),
            ("NUDGE_CATALOG", "2024"),
            ("NUDGE_LISTEN", "0.0.0.0:7000"),
            ("NUDGE_METRICS_LISTEN", "off"),
            ("NUDGE_LOG", "nudge_service=debug,info"),
            ("NUDGE_LOG_CUSTOMER_IDS", "true"),
            ("NUDGE_STORAGE_DATA_DIR", "/var/lib/nudge"),
            ("NUDGE_STORAGE_IN_MEMORY", "true"),
        ],
        &[],
    )
    .expect("valid");
    assert_eq!(config.auth.token, Some(Secret::new("12345")));
    assert_eq!(config.catalog, Some(PathBuf::from("2024")));
    assert_eq!(config.listen, "0.0.0.0:7000".parse().expect("an address"));
    assert_eq!(config.metrics_listen, Listen::Off);
    assert_eq!(config.log, "nudge_service=debug,info");
    assert!(config.log_customer_ids);
    assert_eq!(config.storage.data_dir, PathBuf::from("/var/lib/nudge"));
    assert!(config.storage.in_memory);
    config.validate().expect("valid");
}

#[test]
fn the_token_from_the_environment_replaces_the_files_token_settings() {
    let file = TempFile::new(
        "token",
        "[auth]\ntoken_file = \"/nonexistent/nudge/token\"\n",
    );
    let config =
        Config::load(Some(&file.0), [("NUDGE_AUTH_TOKEN", "from-env")], &[]).expect("valid");
    assert_eq!(config.auth.token, Some(Secret::new("from-env")));
    assert_eq!(config.auth.token_file, None);
    config.validate().expect("no token file to read");
}

#[test]
fn an_unknown_variable_or_a_bad_value_names_the_variable() {
    let env_error = |name: &str, value: &str| match Config::load(None, [(name, value)], &[]) {
        Err(ConfigError::Env { variable, message }) => {
            assert_eq!(variable, name);
            let shown = ConfigError::Env {
                variable,
                message: message.clone(),
            }
            .to_string();
            assert!(shown.contains(name), "{shown}");
            message
        }
        other => panic!("{name}={value}: expected an env error, got {other:?}"),
    };
    let message = env_error("NUDGE_BUDGETMS", "5");
    assert!(
        message.contains("budgetms") && message.contains("budget_ms"),
        "lists the settings: {message}"
    );
    env_error("NUDGE_ACTORS_ARBITRS", "2");
    env_error("NUDGE_NOPE_AT_ALL", "1");
    let message = env_error("NUDGE_ACTORS_ARBITERS", "many");
    assert!(message.contains("many"), "{message}");
    env_error("NUDGE_BUDGET_MS", "-5");
    env_error("NUDGE_LOG_FORMAT", "xml");
    env_error("NUDGE_LOG_CUSTOMER_IDS", "perhaps");
    env_error("NUDGE_LISTEN", "localhost");
    match Config::load(
        None,
        [("HOME", "/root")],
        &[set("grpc.max_conections", "3")],
    ) {
        Err(ConfigError::Set { setting, .. }) => assert_eq!(setting, "grpc.max_conections"),
        other => panic!("expected a --set error, got {other:?}"),
    }
    match Config::load(
        None,
        [("HOME", "/root")],
        &[set("grpc.max_connections", "x")],
    ) {
        Err(error @ ConfigError::Set { .. }) => {
            assert!(
                error.to_string().contains("grpc.max_connections"),
                "{error}"
            )
        }
        other => panic!("expected a --set error, got {other:?}"),
    }
}

#[test]
fn out_of_range_operations_settings_are_named() {
    /// Puts one setting out of its range.
    type Break = fn(&mut Config);
    let cases: [(&str, Break); 15] = [
        ("grpc.max_concurrent_requests", |c| {
            c.grpc.max_concurrent_requests = 0
        }),
        ("grpc.min_concurrent_requests", |c| {
            c.grpc.min_concurrent_requests = 0
        }),
        ("grpc.queue_delay_target_ms", |c| {
            c.grpc.queue_delay_target_ms = 60_001
        }),
        ("grpc.queue_delay_interval_ms", |c| {
            c.grpc.queue_delay_interval_ms = 9
        }),
        ("grpc.max_connections", |c| c.grpc.max_connections = 0),
        ("grpc.max_concurrent_streams", |c| {
            c.grpc.max_concurrent_streams = 0
        }),
        ("grpc.keepalive_interval_secs", |c| {
            c.grpc.keepalive_interval_secs = 0
        }),
        ("grpc.keepalive_timeout_secs", |c| {
            c.grpc.keepalive_timeout_secs = 0
        }),
        ("journeys.ack_timeout_ms", |c| c.journeys.ack_timeout_ms = 0),
        ("journeys.longest_backoff_secs", |c| {
            // Shorter than the acknowledgement timeout.
            c.journeys.ack_timeout_ms = 60_000;
            c.journeys.longest_backoff_secs = 30;
        }),
        ("journeys.longest_backoff_secs", |c| {
            c.journeys.longest_backoff_secs = 86_401
        }),
        ("journeys.dispatch_expiry_secs", |c| {
            c.journeys.dispatch_expiry_secs = 0
        }),
        ("journeys.subscriber_buffer", |c| {
            c.journeys.subscriber_buffer = 0
        }),
        ("log", |c| c.log = "nudge_service=loud".to_owned()),
        ("log_customer_id_key", |c| {
            c.log_customer_id_key = Some(Secret::new(""))
        }),
    ];
    for (field, break_it) in cases {
        let mut config = Config::default();
        break_it(&mut config);
        assert_eq!(invalid_field(&config), field);
    }
}

/// The fields of the table `section` (top level when `None`), from the
/// error serde gives for an unknown one: it lists them all.
fn fields_of(section: Option<&str>) -> Vec<String> {
    let text = match section {
        None => "__probe = 1\n".to_owned(),
        Some(section) => format!("[{section}]\n__probe = 1\n"),
    };
    let error = Config::from_toml(&text).expect_err("an unknown field");
    // "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, …"
    let (_, listed) = error
        .split_once("expected")
        .unwrap_or_else(|| panic!("no field list in {error:?}"));
    listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every setting's key, e.g. `actors.arbiters`.
fn every_key() -> Vec<String> {
    let mut keys = Vec::new();
    for field in fields_of(None) {
        let is_table = Config::from_toml(&format!("[{field}]\n")).is_ok();
        assert_eq!(
            is_table,
            SECTIONS.contains(&field.as_str()),
            "SECTIONS must list exactly the tables of Config: {field}"
        );
        if is_table {
            keys.extend(
                fields_of(Some(&field))
                    .into_iter()
                    .map(|key| format!("{field}.{key}")),
            );
        } else {
            keys.push(field);
        }
    }
    keys
}

#[test]
fn every_setting_has_an_environment_variable() {
    let keys = every_key();
    assert!(keys.len() >= 40, "{keys:?}");
    for key in &keys {
        let variable = env_name(key);
        let suffix = variable.strip_prefix(ENV_PREFIX).expect("the prefix");
        assert_eq!(key_of_env(suffix).join("."), *key, "{variable}");
        // The variable reaches the setting: an unknown one would be an
        // "unknown field" error, whatever the value.
        if let Err(error) = Config::load(None, [(variable.as_str(), "1")], &[]) {
            assert!(!error.to_string().contains("unknown field"), "{error}");
        }
    }
}

#[test]
fn the_readme_lists_every_setting_with_its_variable() {
    let readme = include_str!("../../../README.md");
    for key in every_key() {
        let row = format!("| `{key}` | `{}` |", env_name(&key));
        assert!(readme.contains(&row), "README.md has no row starting {row}");
    }
}

#[test]
fn the_live_guardrail_is_set_by_file_and_environment_and_checked() {
    let config = Config::load(
        None,
        [
            ("NUDGE_MODELS_GUARDRAIL_ALPHA", "0.01"),
            ("NUDGE_MODELS_GUARDRAIL_MIN_SERVED", "200"),
        ],
        &[],
    )
    .expect("valid layers");
    let test = config.models.guardrail_test().expect("on by default");
    assert_eq!((test.alpha, test.min_served), (0.01, 200));
    assert_eq!(
        test.effect,
        nudge_models::guardrail::SequentialTest::default().effect
    );
    let off = Config::from_toml("[models]\nguardrail = false\n").expect("valid");
    assert_eq!(off.models.guardrail_test(), None);
    let models = |guardrail_alpha, guardrail_effect| Config {
        models: ModelsConfig {
            guardrail_alpha,
            guardrail_effect,
            ..ModelsConfig::default()
        },
        ..Config::default()
    };
    for alpha in [0.0, 1.0, f64::NAN] {
        assert_eq!(invalid_field(&models(alpha, 0.2)), "models.guardrail_alpha");
    }
    for effect in [0.0, -1.0, f64::INFINITY] {
        assert_eq!(
            invalid_field(&models(0.05, effect)),
            "models.guardrail_effect"
        );
    }
}

#[test]
fn a_replicas_wait_must_fit_in_the_redis_timeout() {
    let redis = |redis_durability, redis_wait_timeout_ms, redis_timeout_ms| Config {
        storage: StorageConfig {
            backend: StorageBackend::Redis,
            redis_urls: vec!["redis://127.0.0.1:7001".to_owned()],
            redis_durability,
            redis_wait_timeout_ms,
            redis_timeout_ms,
            ..StorageConfig::default()
        },
        ..Config::default()
    };
    assert!(
        redis(RedisDurability::Replicas, 100, 1_000)
            .validate()
            .is_ok()
    );
    assert_eq!(
        invalid_field(&redis(RedisDurability::Replicas, 1_000, 1_000)),
        "storage.redis_wait_timeout_ms"
    );
    let error = redis(RedisDurability::Replicas, 2_000, 1_000)
        .validate()
        .expect_err("longer than the timeout")
        .to_string();
    assert!(
        error.contains("shorter than storage.redis_timeout_ms (1000)"),
        "{error}"
    );
    // Without replicas the wait is not used.
    assert!(
        redis(RedisDurability::Fsync, 2_000, 1_000)
            .validate()
            .is_ok()
    );
}

#[test]
fn a_cluster_serving_tls_forwards_over_tls_checked_with_its_ca() {
    let dir = std::env::temp_dir().join(format!("nudge-forwarding-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write a PEM file");
        Some(path)
    };
    let (cert, key, ca) = (
        file("node.pem", "node certificate"),
        file("node.key", "node key"),
        file("ca.pem", "cluster CA"),
    );
    let cluster = |tls: TlsConfig, tls_ca: Option<PathBuf>, tls_server_name: Option<&str>| Config {
        storage: StorageConfig {
            backend: StorageBackend::Redis,
            redis_urls: vec!["redis://127.0.0.1:7001".to_owned()],
            ..StorageConfig::default()
        },
        cluster: ClusterConfig {
            enabled: true,
            tls_ca,
            tls_server_name: tls_server_name.map(str::to_owned),
            ..ClusterConfig::default()
        },
        tls,
        ..Config::default()
    };
    let serving = TlsConfig {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: None,
    };
    let mutual = TlsConfig {
        client_ca: ca.clone(),
        ..serving.clone()
    };

    // Plain gRPC without TLS.
    let plain = cluster(TlsConfig::default(), None, None);
    assert!(plain.validate().is_ok());
    assert!(plain.forwarding_tls().expect("valid").is_none());
    // TLS needs the CA the nodes are checked with.
    let error = cluster(serving.clone(), None, None)
        .validate()
        .expect_err("no CA")
        .to_string();
    assert!(error.contains("cluster.tls_ca"), "{error}");
    assert!(
        error.contains("CA that signed every node's certificate"),
        "{error}"
    );
    // The CA and the name mean nothing without TLS.
    assert_eq!(
        invalid_field(&cluster(TlsConfig::default(), ca.clone(), None)),
        "cluster.tls_ca"
    );
    assert_eq!(
        invalid_field(&cluster(TlsConfig::default(), None, Some("nudge.internal"))),
        "cluster.tls_server_name"
    );
    for bad in ["", "nudge internal", "nudge.internal:443"] {
        assert_eq!(
            invalid_field(&cluster(serving.clone(), ca.clone(), Some(bad))),
            "cluster.tls_server_name",
            "{bad:?}"
        );
    }
    assert_eq!(
        invalid_field(&cluster(
            serving.clone(),
            Some(dir.join("missing.pem")),
            None
        )),
        "cluster.tls_ca"
    );

    let tls = cluster(serving, ca.clone(), Some("nudge.internal"));
    assert!(tls.validate().is_ok());
    let forwarding = tls.forwarding_tls().expect("valid").expect("over TLS");
    assert_eq!(forwarding.ca, b"cluster CA");
    assert_eq!(forwarding.server_name.as_deref(), Some("nudge.internal"));
    assert!(
        forwarding.identity.is_none(),
        "no client certificates asked"
    );
    // With client certificates asked of callers, a forwarding node shows
    // its own.
    let forwarding = cluster(mutual, ca, None)
        .forwarding_tls()
        .expect("valid")
        .expect("over TLS");
    assert_eq!(
        forwarding.identity,
        Some((b"node certificate".to_vec(), b"node key".to_vec()))
    );
    assert_eq!(forwarding.server_name, None);
    let _ = std::fs::remove_dir_all(&dir);
}
