//! Management records (request id 0): GET_VALUES answered from the server's real values, unknown types refused.

use super::connection::{Connection, ProtocolError};
use super::pairs;
use super::record::{self, NULL_REQUEST_ID, RecordType};

impl Connection {
    /// Handles a record with the null request id.
    pub(super) fn management(
        &mut self,
        record_type: RecordType,
        content: &[u8],
    ) -> Result<(), ProtocolError> {
        match record_type {
            RecordType::GetValues => self.get_values(content),
            // Replies from a peer; answering them could start an endless exchange.
            RecordType::GetValuesResult | RecordType::UnknownType => Ok(()),
            other => {
                record::encode_unknown_type(&mut self.out.mgmt, other.as_u8());
                Ok(())
            }
        }
    }

    /// Answers GET_VALUES with the known names that were asked for, each at most once.
    fn get_values(&mut self, content: &[u8]) -> Result<(), ProtocolError> {
        const NAMES: [&[u8]; 3] = [b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"];
        let mut asked = [false; NAMES.len()];
        for pair in pairs::iter_pairs(content, &self.limits.pairs) {
            let (name, _) = pair?;
            let name = content.get(name).unwrap_or_default();
            if let Some(i) = NAMES.iter().position(|known| *known == name) {
                asked[i] = true;
            }
        }
        let mut body = Vec::new();
        let values = [
            self.values.max_conns.to_string(),
            self.values.max_reqs.to_string(),
            u8::from(self.values.mpxs_conns).to_string(),
        ];
        for ((name, value), asked) in NAMES.iter().zip(&values).zip(asked) {
            if asked {
                pairs::encode_pair(&mut body, name, value.as_bytes());
            }
        }
        let out = &mut self.out.mgmt;
        record::encode_record(out, RecordType::GetValuesResult, NULL_REQUEST_ID, &body);
        Ok(())
    }
}
