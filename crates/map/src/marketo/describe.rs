//! Field metadata and activity types.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::MarketoClient;
use super::transport::Call;
use crate::MapError;
use crate::connector::{ActivityType, FieldInfo, MapObject};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeadAttribute {
    display_name: Option<String>,
    data_type: Option<String>,
    length: Option<u32>,
    rest: Option<RestName>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestName {
    name: String,
    #[serde(default)]
    read_only: bool,
}

/// Describe Lead2's one entry (mapi-spec `LeadAttribute2`); only the searchable keys are read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeadAttribute2 {
    #[serde(default)]
    searchable_fields: Vec<Vec<String>>,
}

/// Describe Lead2's searchable keys and when they were read.
pub(super) type Searchable = (Instant, Arc<Vec<Vec<String>>>);

/// How long the searchable fields are kept (Adobe: cache field metadata for a day).
const SEARCHABLE_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivityTypeBody {
    id: i64,
    name: String,
    api_name: Option<String>,
    description: Option<String>,
}

/// Columns of a bulk activity export (mkto:bulk-activity-extract.md).
pub(crate) const ACTIVITY_FIELDS: [(&str, &str); 8] = [
    ("marketoGUID", "string"),
    ("leadId", "integer"),
    ("activityDate", "datetime"),
    ("activityTypeId", "integer"),
    ("campaignId", "integer"),
    ("primaryAttributeValueId", "integer"),
    ("primaryAttributeValue", "string"),
    ("attributes", "json"),
];

impl MarketoClient {
    /// Fields of an object: `GET /rest/v1/leads/describe.json` for leads (only fields usable
    /// through REST), the documented bulk columns for activities (no call).
    pub async fn describe_fields(&self, object: MapObject) -> Result<Vec<FieldInfo>, MapError> {
        match object {
            MapObject::Leads => {
                let mut call = Call::get("describe leads", "/rest/v1/leads/describe.json");
                call.timeout = Some(self.shared.config.request_timeout);
                let env = self.call_json::<LeadAttribute>(&call).await?;
                Ok(env
                    .result
                    .into_iter()
                    .filter_map(|a| {
                        let rest = a.rest?;
                        Some(FieldInfo {
                            display_name: a.display_name.unwrap_or_else(|| rest.name.clone()),
                            name: rest.name,
                            data_type: a.data_type.unwrap_or_default(),
                            length: a.length,
                            read_only: rest.read_only,
                        })
                    })
                    .collect())
            }
            MapObject::Activities => Ok(ACTIVITY_FIELDS
                .iter()
                .map(|(name, data_type)| FieldInfo {
                    name: (*name).to_owned(),
                    display_name: (*name).to_owned(),
                    data_type: (*data_type).to_owned(),
                    length: None,
                    read_only: true,
                })
                .collect()),
        }
    }

    /// The keys leads can be found by: `GET /rest/v1/leads/describe2.json`, `searchableFields`.
    /// Asked once, then kept for a day by every handle of this client.
    pub async fn searchable_fields(&self) -> Result<Arc<Vec<Vec<String>>>, MapError> {
        let mut cached = self.shared.searchable.lock().await;
        if let Some((at, keys)) = cached.as_ref()
            && at.elapsed() < SEARCHABLE_TTL
        {
            return Ok(keys.clone());
        }
        let mut call = Call::get("describe leads", "/rest/v1/leads/describe2.json");
        call.timeout = Some(self.shared.config.request_timeout);
        let env = self.call_json::<LeadAttribute2>(&call).await?;
        let keys: Vec<Vec<String>> = env
            .result
            .into_iter()
            .flat_map(|a| a.searchable_fields)
            .filter(|k| !k.is_empty())
            .collect();
        if keys.is_empty() {
            return Err(MapError::Protocol {
                operation: call.operation.to_owned(),
                message: "Describe Lead2 lists no searchable fields".to_owned(),
            });
        }
        let keys = Arc::new(keys);
        *cached = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// All activity types: `GET /rest/v1/activities/types.json`.
    pub async fn activity_types(&self) -> Result<Vec<ActivityType>, MapError> {
        let mut call = Call::get("list activity types", "/rest/v1/activities/types.json");
        call.timeout = Some(self.shared.config.request_timeout);
        let env = self.call_json::<ActivityTypeBody>(&call).await?;
        Ok(env
            .result
            .into_iter()
            .map(|t| ActivityType {
                id: t.id,
                name: t.name,
                api_name: t.api_name,
                description: t.description,
            })
            .collect())
    }
}
