//! Settings from the command line and a job's TOML file merged (flags win), and what they
//! describe built: the EHR client with its auth and TLS, the state file's key.

use super::args::SyncArgs;
use anyhow::Context;

pub(crate) fn merge_sync_args(args: &SyncArgs) -> anyhow::Result<SyncArgs> {
    let mut base: SyncArgs = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", p.display()))?
        }
        None => SyncArgs::default(),
    };
    macro_rules! over { ($($f:ident),*) => { $( if args.$f.is_some() { base.$f = args.$f.clone(); } )* } }
    over!(
        register,
        ehr,
        state,
        state_key,
        summary,
        on_conflict,
        takeover,
        create_by,
        grouping,
        chunk_size,
        max_end_share,
        bearer,
        token_url,
        client_id,
        client_secret,
        scope,
        client_key,
        client_key_alg,
        client_key_id,
        client_p12,
        client_p12_password,
        client_cert,
        ca_cert,
        tenant,
        max_retry_wait,
        as_of
    );
    if !args.auth_allow_origin.is_empty() {
        base.auth_allow_origin = args.auth_allow_origin.clone();
    }
    base.dry_run |= args.dry_run;
    base.end_unmatched |= args.end_unmatched;
    base.no_inform_tasks |= args.no_inform_tasks;
    base.written_information |= args.written_information;
    if args.written_information_dir.is_some() {
        base.written_information_dir = args.written_information_dir.clone();
    }
    base.reprobe |= args.reprobe;
    base.action = args.action.clone();
    Ok(base)
}

/// Connection settings for a command that only reads or probes a server: a job's TOML file
/// (`--config`), with the command's flags over it.
pub(crate) fn connection(
    config: Option<&std::path::Path>,
    ehr: &str,
    tenant: Option<&String>,
    bearer: Option<&String>,
) -> anyhow::Result<SyncArgs> {
    let mut args = match config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str::<SyncArgs>(&text).with_context(|| format!("{}", p.display()))?
        }
        None => SyncArgs::default(),
    };
    args.ehr = Some(ehr.to_owned());
    if let Some(t) = tenant {
        args.tenant = Some(t.clone());
    }
    if let Some(b) = bearer {
        args.bearer = Some(b.clone());
    }
    Ok(args)
}

/// The state file's key from `file:PATH` or `env:NAME`; there is no default.
pub(crate) fn state_key(spec: Option<&str>) -> anyhow::Result<fastkontakt::sync::state::StateKey> {
    let spec = spec.context(
        "a state key is required: --state-key file:PATH|env:NAME (or FASTKONTAKT_STATE_KEY, or state_key in --config); make one with: head -c 32 /dev/urandom | base64 > state.key && chmod 600 state.key",
    )?;
    let secret = fastkontakt::fhir::client::Secret::load(spec)?;
    Ok(fastkontakt::sync::state::StateKey::new(
        secret.expose().as_bytes(),
    )?)
}

/// The EHR client the settings describe: base URL, auth, TLS, tenant.
pub(crate) fn client_from(
    args: &SyncArgs,
) -> anyhow::Result<fastkontakt::fhir::client::FhirClient> {
    use fastkontakt::fhir::client::{Auth, ClientConfig, Credential, FhirClient, Secret, Tls};
    let ehr = args
        .ehr
        .clone()
        .context("--ehr URL is required (or ehr = \"...\" in --config)")?;
    let mut cfg = ClientConfig::new(&ehr);
    cfg.auth = match (&args.bearer, &args.token_url) {
        (Some(b), _) => Auth::Bearer(Secret::load(b)?),
        (None, Some(url)) => Auth::ClientCredentials {
            token_url: url.clone(),
            client_id: args
                .client_id
                .clone()
                .context("--client-id is required with --token-url")?,
            credential: match (&args.client_secret, &args.client_key) {
                (Some(secret), _) => Credential::Secret(Secret::load(secret)?),
                (None, Some(key)) => Credential::PrivateKeyJwt {
                    key_pem: Secret::load(key)?,
                    algorithm: if args.client_key_alg.as_deref() == Some("RS384") {
                        jsonwebtoken::Algorithm::RS384
                    } else {
                        jsonwebtoken::Algorithm::ES384
                    },
                    kid: args.client_key_id.clone(),
                },
                (None, None) => anyhow::bail!("--token-url needs --client-secret or --client-key"),
            },
            scope: args.scope.clone(),
        },
        _ => Auth::None,
    };
    let p12 = match &args.client_p12 {
        Some(p) => Some((
            p.clone(),
            Secret::load(
                args.client_p12_password
                    .as_deref()
                    .context("--client-p12 needs --client-p12-password")?,
            )?,
        )),
        None => None,
    };
    cfg.tls = Tls {
        identity_pem: args.client_cert.clone(),
        identity_p12: p12,
        ca_pem: args.ca_cert.clone(),
    };
    cfg.tenant = args.tenant.clone();
    cfg.auth_origins = args.auth_allow_origin.clone();
    if let Some(s) = args.max_retry_wait {
        cfg.max_retry_wait = std::time::Duration::from_secs(s);
    }
    Ok(FhirClient::new(cfg)?)
}

/// The state file a job's settings name (default `fastkontakt-state.sqlite`).
pub(crate) fn state_path(args: &SyncArgs) -> std::path::PathBuf {
    args.state
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("fastkontakt-state.sqlite"))
}

/// One sync as the settings describe it: the command line's and a service job's alike.
pub(crate) fn sync_options<'a>(
    args: &'a SyncArgs,
    state: &'a std::path::Path,
    mode: fastkontakt::pipelines::sync::Mode,
) -> anyhow::Result<fastkontakt::pipelines::sync::Options<'a>> {
    let chunk = args
        .chunk_size
        .unwrap_or(fastkontakt::sync::DEFAULT_CHUNK_SIZE);
    Ok(fastkontakt::pipelines::sync::Options {
        register: args.register.as_deref(),
        state,
        state_key: state_key(args.state_key.as_deref())?,
        mode,
        options: fastkontakt::sync::Options {
            on_conflict: args
                .on_conflict
                .unwrap_or(fastkontakt::sync::OnConflict::Report),
            chunk_size: chunk,
            as_of: args.as_of.unwrap_or_else(fastkontakt::pipelines::today),
            max_end_share: args.max_end_share.unwrap_or(0.2),
            takeover: args.takeover,
            end_unmatched: args.end_unmatched,
            writing: fastkontakt::sync::Writing {
                reprobe: args.reprobe,
                create_by: args.create_by,
                grouping: args.grouping,
            },
            duties: fastkontakt::sync::Duties {
                inform_tasks: !args.no_inform_tasks,
                written_information: args.written_information,
                written_information_files: args.written_information_dir.is_some(),
            },
        },
        chunk_size: chunk,
        written_information_dir: args.written_information_dir.clone(),
    })
}
