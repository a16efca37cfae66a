//! CEL rules, compiled once when the catalog loads and evaluated per decision.

use crate::Error;
use std::fmt;
use std::sync::Arc;

/// A compiled CEL expression and the text it came from.
pub struct Rule {
    source: String,
    program: cel::Program,
}

impl fmt::Debug for Rule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_tuple("Rule").field(&self.source).finish()
    }
}

impl Rule {
    /// Compiles `source` in `env`; the error is CEL's parse message.
    pub fn compile(env: &cel::Env, source: &str) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err("rule is empty".to_owned());
        }
        let program = env
            .compile(source)
            .map_err(|errors| errors.to_string().replace('\n', " "))?;
        Ok(Self {
            source: source.to_owned(),
            program,
        })
    }

    /// The rule as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the rule; it must yield a boolean.
    pub fn evaluate(&self, context: &cel::Context<'_, '_>) -> Result<bool, Error> {
        match self.program.execute(context) {
            Ok(cel::Value::Bool(verdict)) => Ok(verdict),
            Ok(other) => Err(Error::RuleFailed {
                rule: self.source.clone(),
                reason: format!("it returned {:?}, not a bool", other.type_of()),
            }),
            Err(error) => Err(Error::RuleFailed {
                rule: self.source.clone(),
                reason: error.to_string(),
            }),
        }
    }
}

/// The CEL environment every rule of a catalog is compiled and run in.
#[derive(Clone)]
pub struct RuleEnv(pub Arc<cel::Env>);

impl RuleEnv {
    /// The standard CEL environment.
    pub fn standard() -> Self {
        Self(Arc::new(cel::Env::stdlib()))
    }
}

impl fmt::Debug for RuleEnv {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("RuleEnv(stdlib)")
    }
}
