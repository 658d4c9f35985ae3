//! `/help/glossary`: every term of the pages with its explanation.

use askama::Template;
use askama_web::WebTemplate;

use super::Chrome;
use crate::auth::PageUser;
use crate::views::glossary::{TERMS, Term};

#[derive(Template, WebTemplate)]
#[template(path = "glossary.html")]
pub(crate) struct GlossaryPage {
    chrome: Chrome,
    terms: &'static [Term],
}

pub(crate) async fn page(PageUser(user): PageUser) -> GlossaryPage {
    GlossaryPage {
        chrome: Chrome::new(&user, "help", None),
        terms: TERMS,
    }
}
