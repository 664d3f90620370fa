//! Who a client connection is: the identities AddAuth adds to its
//! [`Caller`](crate::acl::Caller) (its address and TLS certificate come with
//! the connection; see `Frontend::on_opened`).

use tracing::{debug, info};
use zab_proto::{ErrorCode, Outcome};

use super::frontend::Frontend;
use super::ConnId;
use crate::acl::{self, IDENTITIES_PER_CONNECTION_MAX};

impl Frontend {
    /// AddAuth: the identity the credentials prove is added to the
    /// connection's caller at once (requests already queued behind it run
    /// with it, as in ZooKeeper). Failures change nothing.
    pub(super) fn add_auth(&mut self, conn: ConnId, scheme: &str, auth: &[u8]) -> Outcome {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Outcome::Err(ErrorCode::ConnectionLoss);
        };
        let id = match acl::authenticate(scheme, auth) {
            Ok(id) => id,
            Err(code) => {
                debug!(conn, scheme, "AddAuth refused");
                return Outcome::Err(code);
            }
        };
        if c.caller.ids.contains(&id) {
            return Outcome::Ok(zab_proto::Response::AddAuth);
        }
        if c.caller.ids.len() >= IDENTITIES_PER_CONNECTION_MAX {
            return Outcome::Err(ErrorCode::AuthFailed);
        }
        if self.superusers.contains(&id) {
            info!(conn, "a connection authenticated as the super user");
            c.caller.superuser = true;
        }
        c.caller.ids.push(id);
        Outcome::Ok(zab_proto::Response::AddAuth)
    }
}
