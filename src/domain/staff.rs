//! Staff: the person assigned as a contact, with profession, licence and specialties.

use super::identity::HsaId;

/// Defines an enum whose variants are the codes of one of the project's CodeSystems under
/// `mappings/fhir/`. The code string is the variant's stable name; displays, systems and
/// second codings come from the loaded CodeSystem (a test checks the two agree).
macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(missing_docs)] // a variant is named by its code; the CodeSystem has its display
        pub enum $name { $($(#[$vm])* $variant),+ }
        impl $name {
            /// Every code, in CodeSystem order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The code in the project CodeSystem.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }
            /// The value a code names, if any.
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.code())
            }
        }
    };
}
pub(crate) use code_enum;

/// A profession (yrke): a code of the CodeSystem `yrke` under `mappings/fhir/`, which a region
/// extends by editing that file (Örebro §7.2: the FVK role "inte knuten till någon särskild
/// yrkeskategori"; Gävleborg §2.1.1 names professions only as examples). A word the CodeSystem
/// lacks is kept as the source wrote it (`is_listed` false) and reported, never dropped.
/// Only the terminology makes these, so a listed code always exists in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Profession(&'static ProfessionDef);

#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ProfessionDef {
    code: &'static str,
    listed: bool,
    health_care: Option<bool>,
}

static PROFESSIONS: super::code::Pool<ProfessionDef> = std::sync::OnceLock::new();

impl Profession {
    /// The physician's code, fixed by law (HSL 7 kap. 3 §: the FLK is a physician).
    pub const PHYSICIAN: &'static str = "lakare";

    /// A code of the CodeSystem, with its property `halso-och-sjukvardspersonal`.
    pub(crate) fn listed(code: &str, health_care: Option<bool>) -> Self {
        Self::of(code, true, health_care)
    }
    fn of(code: &str, listed: bool, health_care: Option<bool>) -> Self {
        let def = ProfessionDef {
            code: super::code::intern(code),
            listed,
            health_care,
        };
        Profession(super::code::intern_in(&PROFESSIONS, def))
    }
    /// A word the CodeSystem does not have, as the source wrote it.
    pub(crate) fn unlisted(word: &str) -> Self {
        Self::of(word, false, None)
    }
    /// The code (or, unlisted, the word as written).
    pub fn code(self) -> &'static str {
        self.0.code
    }
    /// Whether the CodeSystem has the code.
    pub fn is_listed(self) -> bool {
        self.0.listed
    }
    /// A physician (läkare).
    pub fn is_physician(self) -> bool {
        self.0.listed && self.0.code == Self::PHYSICIAN
    }
    /// Health-care staff (hälso- och sjukvårdspersonal) as opposed to administrative staff, as
    /// the CodeSystem's property says (Örebro §7.2 requires an FVK to be health-care staff);
    /// None when not known (an unlisted word, or a code without the property).
    pub fn is_health_care_staff(self) -> Option<bool> {
        self.0.health_care
    }
}

impl serde::Serialize for Profession {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.code)
    }
}

/// Whether the person holds a Swedish licence (legitimation) for the profession.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Licence {
    /// A licensed professional (legitimerad).
    Licensed,
    /// Known not to hold a licence.
    NotLicensed,
    /// Not known.
    #[default]
    Unknown,
}

/// A physician's specialty as a code of the project CodeSystem `specialitet`. Which specialties
/// qualify for what is profile data, so this is an open code rather than a closed enum; it can
/// only be made by the terminology, which checks the code exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SpecialtyCode(String);

impl SpecialtyCode {
    /// Only the terminology (which knows the CodeSystem) makes these.
    pub(crate) fn new_unchecked(code: &str) -> Self {
        SpecialtyCode(code.to_owned())
    }
    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A staff member as the register or the EHR names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Staff {
    /// The HSA-id.
    pub hsa: HsaId,
    /// The name, if known.
    pub name: Option<String>,
    /// The profession, if known.
    pub profession: Option<Profession>,
    /// Whether licensed, if known.
    pub licence: Licence,
    /// Specialties (the register's codes).
    pub specialties: Vec<SpecialtyCode>,
}

impl Staff {
    /// Whether a licensed physician: None when the licence or profession is unknown.
    pub fn is_licensed_physician(&self) -> Option<bool> {
        match (self.profession, self.licence) {
            (Some(p), Licence::Licensed) if p.is_physician() => Some(true),
            (Some(p), Licence::Unknown) if p.is_physician() => None,
            (None, _) => None,
            _ => Some(false),
        }
    }
}
