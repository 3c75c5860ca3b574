//! A database the user names with a URL: reached, never started or stopped.

use loadgen_common::dburl::DbUrl;
use loadgen_common::secret;

use super::DatabaseHost;
use crate::error::CoordinatorError;

pub struct UserUrl {
    url: String,
    host_label: String,
}

impl UserUrl {
    pub fn new(url: &str) -> Result<Self, CoordinatorError> {
        let host_label = DbUrl::parse(url).map_err(|e| CoordinatorError::Usage(e.to_string()))?.host_label();
        Ok(UserUrl { url: url.to_string(), host_label })
    }
}

impl DatabaseHost for UserUrl {
    fn url(&self) -> &str {
        &self.url
    }

    fn description(&self) -> String {
        secret::mask_url(&self.url)
    }

    fn host_label(&self) -> String {
        self.host_label.clone()
    }
}
