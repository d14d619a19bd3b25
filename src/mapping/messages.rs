//! The findings' messages as data: a Fluent catalogue per language under `mappings/messages/`
//! (`sv.ftl`, `en.ftl`). Rules name a message and its arguments; the run's language words it.

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::path::{Path, PathBuf};

/// The language of messages: Swedish, the users' (default), or English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Svenska.
    #[default]
    Sv,
    /// English.
    En,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }
}

#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, thiserror::Error)]
pub enum MessagesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a Fluent catalogue: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: message '{id}' is missing (every language has every message)")]
    Missing { path: PathBuf, id: String },
}

struct Catalogue {
    bundle: FluentBundle<FluentResource>,
    ids: Vec<String>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Catalogue({} messages)", self.ids.len())
    }
}

fn load(dir: &Path, lang: Lang) -> Result<Catalogue, MessagesError> {
    let path = dir.join(format!("{}.ftl", lang.code()));
    let text = std::fs::read_to_string(&path).map_err(|source| MessagesError::Io {
        path: path.clone(),
        source,
    })?;
    let resource = FluentResource::try_new(text).map_err(|(_, errors)| MessagesError::Parse {
        path: path.clone(),
        message: format!("{errors:?}"),
    })?;
    let ids: Vec<String> = resource
        .entries()
        .filter_map(|e| match e {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
            _ => None,
        })
        .collect();
    let langid: unic_langid::LanguageIdentifier = match lang {
        Lang::Sv => unic_langid::langid!("sv-SE"),
        Lang::En => unic_langid::langid!("en-GB"),
    };
    let mut bundle = FluentBundle::new_concurrent(vec![langid]);
    // Plain text for terminals and files: no bidi isolation marks around arguments.
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .map_err(|errors| MessagesError::Parse {
            path: path.clone(),
            message: format!("{errors:?}"),
        })?;
    Ok(Catalogue { bundle, ids })
}

/// Both catalogues.
#[derive(Debug)]
pub struct Messages {
    sv: Catalogue,
    en: Catalogue,
}

impl Messages {
    /// Loads `DIR/sv.ftl` and `DIR/en.ftl`; each must have every message the other has.
    pub(crate) fn load(dir: &Path) -> Result<Self, MessagesError> {
        let sv = load(dir, Lang::Sv)?;
        let en = load(dir, Lang::En)?;
        for (a, b, lang) in [(&sv, &en, Lang::En), (&en, &sv, Lang::Sv)] {
            if let Some(id) = a.ids.iter().find(|i| !b.ids.contains(i)) {
                return Err(MessagesError::Missing {
                    path: dir.join(format!("{}.ftl", lang.code())),
                    id: id.clone(),
                });
            }
        }
        Ok(Messages { sv, en })
    }

    /// Message `id` worded with `args` in `lang`. A message the catalogue lacks is shown as
    /// its id and arguments, never dropped (loading keeps the two catalogues in step).
    pub fn say(&self, lang: Lang, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        let c = match lang {
            Lang::Sv => &self.sv,
            Lang::En => &self.en,
        };
        let mut fa = FluentArgs::new();
        for (k, v) in args {
            fa.set(*k, v.clone());
        }
        match c.bundle.get_message(id).and_then(|m| m.value()) {
            Some(pattern) => {
                let mut errors = Vec::new();
                c.bundle
                    .format_pattern(pattern, Some(&fa), &mut errors)
                    .into_owned()
            }
            None => format!("{id} {args:?}"),
        }
    }
}

/// The catalogues and the language of one run: what a rule speaks through.
#[derive(Debug, Clone, Copy)]
pub struct Speaker<'m> {
    messages: &'m Messages,
    lang: Lang,
}

impl<'m> Speaker<'m> {
    /// Speaks `lang` from `messages`.
    pub fn new(messages: &'m Messages, lang: Lang) -> Self {
        Speaker { messages, lang }
    }
    /// Message `id` with `args`.
    pub fn say(&self, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        self.messages.say(self.lang, id, args)
    }
}

/// Arguments of a message: `msg_args![count = n, unit = u]`.
macro_rules! msg_args {
    ($($k:ident = $v:expr),* $(,)?) => {
        &[$((stringify!($k), fluent_bundle::FluentValue::from($v))),*]
    };
}
pub(crate) use msg_args;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_word_a_message_with_its_arguments() {
        let m = Messages::load(&crate::mapping::default_dir().join("messages")).unwrap();
        let sv = m.say(
            Lang::Sv,
            "fk-r01-per-patient",
            msg_args![count = 2, max = 1],
        );
        assert!(sv.contains('2') && sv.contains("aktiva"), "{sv}");
        let en = m.say(
            Lang::En,
            "fk-r01-per-patient",
            msg_args![count = 2, max = 1],
        );
        assert!(en.contains("active FVKs"), "{en}");
        assert_ne!(sv, en);
    }
}
