//! Notifications: what was told to which channel, and what was held back and why.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use drover_store::NotificationRow;

use super::Chrome;
use crate::WebState;
use crate::auth::PageUser;
use crate::error::PageError;

#[derive(Template, WebTemplate)]
#[template(path = "notifications.html")]
pub(crate) struct NotificationsPage {
    chrome: Chrome,
    notifications: Vec<NotificationRow>,
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
) -> Result<NotificationsPage, PageError> {
    Ok(NotificationsPage {
        chrome: Chrome::new(&user, "notifications", None),
        notifications: state.store().notifications(200).await?,
    })
}
