//! Field metadata and activity types.

use serde::Deserialize;

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
