//! The roster (`persons`) and the face templates (`templates`) in `classproof.db`, and the 1:N
//! gallery built from them at start.
//!
//! R15: the ID-card number is stored for the provincial real-name system but leaves this module
//! only masked ([`Person::id_number_masked`]); templates are never logged.
//!
//! A person belongs to zero or more classes (班次, `person_classes`): a session expects the
//! trainees of its `class_id`, teachers may check in to any session. R10: no class holds more
//! trainees than `[rules] max_trainees` ([`check_class_sizes`]). [`remove_person`] deletes a
//! person with their templates and classes and records it (`roster_removed`, R15).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use thiserror::Error;

use crate::db;
use crate::evidence::log::{self, LogError};
use crate::evidence::record::{Record, RosterRemoved};
use crate::logging::mask_id_number;
use crate::vision::Gallery;

#[derive(Debug, Error)]
pub enum RosterError {
    #[error("roster: database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("roster: {0}")]
    Invalid(String),
    #[error("roster: evidence log: {0}")]
    Log(#[from] LogError),
}

/// Who a person is in class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Trainee,
    Teacher,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Trainee => "trainee",
            Role::Teacher => "teacher",
        }
    }

    pub fn parse(s: &str) -> Result<Role, RosterError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trainee" | "student" | "学员" => Ok(Role::Trainee),
            "teacher" | "教师" => Ok(Role::Teacher),
            other => Err(RosterError::Invalid(format!(
                "role {other:?}: expected trainee or teacher"
            ))),
        }
    }
}

/// An enrolled person.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub person_id: String,
    pub name: String,
    pub role: Role,
    /// Full ID-card number: never log or print it (R15); use [`Person::id_number_masked`].
    pub id_number: Option<String>,
}

impl Person {
    /// The ID-card number as it may be shown (R15).
    pub fn id_number_masked(&self) -> Option<String> {
        self.id_number.as_deref().map(mask_id_number)
    }
}

/// A person with their template count (for `roster list`).
#[derive(Debug, Clone, PartialEq)]
pub struct RosterEntry {
    pub person: Person,
    /// Templates of the given recognition model.
    pub templates: usize,
    /// Templates of other models (need re-enrollment to be used).
    pub other_templates: usize,
    pub enrolled_us: i64,
    /// The classes the person belongs to, sorted.
    pub classes: Vec<String>,
}

/// How an enrollment changes a person's classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassChange<'a> {
    /// Keep the stored classes and add these (`enroll --class`).
    Add(&'a [String]),
    /// The person belongs to exactly these (a `class_id` cell of `roster import`).
    Set(&'a [String]),
}

/// Class ids: the same alphabet as the sessions' `class_id` (letters, digits, `-`, `_`, `.`).
pub fn check_class_id(id: &str) -> Result<(), RosterError> {
    if crate::config::is_valid_id(id, 64) {
        Ok(())
    } else {
        Err(RosterError::Invalid(format!(
            "class id {id:?}: expected 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Splits a `class_id` cell (`c1;c2`) into sorted, unique, checked class ids.
pub fn parse_classes(cell: &str) -> Result<Vec<String>, RosterError> {
    let mut out = BTreeSet::new();
    for c in cell.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        check_class_id(c)?;
        out.insert(c.to_string());
    }
    Ok(out.into_iter().collect())
}

/// Applies a class change to a stored person.
pub fn change_classes(tx: &Transaction, person_id: &str, change: ClassChange) -> Result<(), RosterError> {
    let classes = match change {
        ClassChange::Add(c) => c,
        ClassChange::Set(c) => {
            tx.execute("DELETE FROM person_classes WHERE person_id = ?1", [person_id])?;
            c
        }
    };
    for c in classes {
        check_class_id(c)?;
        tx.execute(
            "INSERT OR IGNORE INTO person_classes (person_id, class_id) VALUES (?1, ?2)",
            params![person_id, c],
        )?;
    }
    Ok(())
}

/// The classes of one person, sorted.
pub fn classes_of(conn: &Connection, person_id: &str) -> Result<Vec<String>, RosterError> {
    let mut stmt =
        conn.prepare("SELECT class_id FROM person_classes WHERE person_id = ?1 ORDER BY class_id")?;
    let rows = stmt.query_map([person_id], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The trainees of a class, by person id.
pub fn trainees_of(conn: &Connection, class_id: &str) -> Result<Vec<String>, RosterError> {
    let mut stmt = conn.prepare(
        "SELECT p.person_id FROM person_classes c JOIN persons p ON p.person_id = c.person_id
         WHERE c.class_id = ?1 AND p.role = 'trainee' ORDER BY p.person_id",
    )?;
    let rows = stmt.query_map([class_id], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every teacher, by person id (teachers may check in to any session).
pub fn teachers(conn: &Connection) -> Result<Vec<String>, RosterError> {
    let mut stmt = conn.prepare("SELECT person_id FROM persons WHERE role = 'teacher' ORDER BY person_id")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A class that would hold more trainees than `[rules] max_trainees` (R10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassTooLarge {
    pub class_id: String,
    /// Trainees the class would have.
    pub trainees: usize,
    pub max: u32,
    /// The index (in `changes`) of the first change that takes the class over the limit.
    pub at: usize,
}

/// R10: checks that applying `changes` (person id, role, class change, in order) to the stored
/// roster leaves no class with more than `max` trainees. Teachers do not count.
pub fn check_class_sizes(
    conn: &Connection,
    changes: &[(String, Role, ClassChange)],
    max: Option<u32>,
) -> Result<Result<(), ClassTooLarge>, RosterError> {
    let Some(max) = max else { return Ok(Ok(())) };
    // Every class's trainees as stored, then each change applied in order.
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT c.class_id, p.person_id FROM person_classes c JOIN persons p ON p.person_id = c.person_id
             WHERE p.role = 'trainee'",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            members.entry(r.get(0)?).or_default().insert(r.get(1)?);
        }
    }
    for (i, (person, role, change)) in changes.iter().enumerate() {
        let new: &[String] = match change {
            ClassChange::Add(c) => c,
            ClassChange::Set(c) => {
                members.values_mut().for_each(|m| {
                    m.remove(person);
                });
                c
            }
        };
        if *role != Role::Trainee {
            // A teacher (or a trainee turned teacher) is in no class's trainee count.
            members.values_mut().for_each(|m| {
                m.remove(person);
            });
            continue;
        }
        for c in new {
            let m = members.entry(c.clone()).or_default();
            m.insert(person.clone());
            if m.len() > max as usize {
                return Ok(Err(ClassTooLarge {
                    class_id: c.clone(),
                    trainees: m.len(),
                    max,
                    at: i,
                }));
            }
        }
    }
    Ok(Ok(()))
}

/// What [`remove_person`] deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    pub person: Person,
    pub templates: u64,
    pub classes: Vec<String>,
    /// The `roster_removed` record's seq.
    pub seq: i64,
}

/// Deletes a person with their templates and classes (R15: templates are biometric data and go
/// with their person) and appends a `roster_removed` record, in one transaction. `None` when
/// there is no such person (nothing is recorded).
pub fn remove_person(
    conn: &mut Connection,
    person_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Removed>, RosterError> {
    let Some(person) = get_person(conn, person_id)? else {
        return Ok(None);
    };
    let classes = classes_of(conn, person_id)?;
    let tx = db::write_tx(conn)?;
    let templates = tx.execute("DELETE FROM templates WHERE person_id = ?1", [person_id])? as u64;
    tx.execute("DELETE FROM persons WHERE person_id = ?1", [person_id])?;
    let record = Record::RosterRemoved(RosterRemoved {
        person_id: person.person_id.clone(),
        id_number_masked: person.id_number_masked(),
        role: person.role,
        templates_removed: templates,
        classes: classes.clone(),
    });
    let (seq, _) = log::append(&tx, now, &record)?;
    tx.commit()?;
    Ok(Some(Removed {
        person,
        templates,
        classes,
        seq,
    }))
}

/// A template about to be stored.
#[derive(Debug, Clone)]
pub struct NewTemplate<'a> {
    pub model: &'a str,
    pub vector: &'a [f32],
    pub photo_sha256: &'a str,
    pub face_px: u32,
    pub det_score: f32,
    pub sharpness: f32,
    pub liveness: Option<f32>,
}

/// Person ids: the same alphabet as other ids (letters, digits, `-`, `_`, `.`), at most 64.
pub fn check_person_id(id: &str) -> Result<(), RosterError> {
    if crate::config::is_valid_id(id, 64) {
        Ok(())
    } else {
        Err(RosterError::Invalid(format!(
            "person id {id:?}: expected 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Inserts or updates a person (name, role and ID number follow the latest enrollment; an
/// empty ID number keeps the stored one).
pub fn upsert_person(tx: &Transaction, p: &Person, now_us: i64) -> Result<(), RosterError> {
    check_person_id(&p.person_id)?;
    if p.name.trim().is_empty() {
        return Err(RosterError::Invalid(format!(
            "person {}: empty name",
            p.person_id
        )));
    }
    tx.execute(
        "INSERT INTO persons (person_id, name, role, id_number, enrolled_us, updated_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (person_id) DO UPDATE SET
            name = excluded.name, role = excluded.role,
            id_number = COALESCE(excluded.id_number, persons.id_number),
            updated_us = excluded.updated_us",
        params![p.person_id, p.name, p.role.as_str(), p.id_number, now_us],
    )?;
    Ok(())
}

/// Stores a template; returns false when this photo is already enrolled for this person and
/// model.
pub fn add_template(
    tx: &Transaction,
    person_id: &str,
    t: &NewTemplate,
    now_us: i64,
) -> Result<bool, RosterError> {
    let blob: Vec<u8> = t.vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    let n = tx.execute(
        "INSERT OR IGNORE INTO templates
            (person_id, model, dim, vector, photo_sha256, face_px, det_score, sharpness, liveness, created_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            person_id,
            t.model,
            t.vector.len() as i64,
            blob,
            t.photo_sha256,
            t.face_px,
            t.det_score as f64,
            t.sharpness as f64,
            t.liveness.map(|l| l as f64),
            now_us
        ],
    )?;
    Ok(n == 1)
}

/// True when this photo is already a template of this person for this model.
pub fn has_photo(
    conn: &Connection,
    person_id: &str,
    model: &str,
    photo_sha256: &str,
) -> Result<bool, RosterError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM templates WHERE person_id = ?1 AND model = ?2 AND photo_sha256 = ?3",
            params![person_id, model, photo_sha256],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// When a person was first enrolled (µs), `None` for nobody.
pub fn enrolled_us(conn: &Connection, person_id: &str) -> Result<Option<i64>, RosterError> {
    Ok(conn
        .query_row(
            "SELECT enrolled_us FROM persons WHERE person_id = ?1",
            [person_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// One person.
pub fn get_person(conn: &Connection, person_id: &str) -> Result<Option<Person>, RosterError> {
    let row = conn
        .query_row(
            "SELECT person_id, name, role, id_number FROM persons WHERE person_id = ?1",
            [person_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?)),
        )
        .optional()?;
    row.map(|(person_id, name, role, id_number)| {
        Ok(Person {
            person_id,
            name,
            role: Role::parse(&role)?,
            id_number,
        })
    })
    .transpose()
}

/// Everyone, by person id, with template counts for `model`.
pub fn list(conn: &Connection, model: &str) -> Result<Vec<RosterEntry>, RosterError> {
    let mut stmt = conn.prepare(
        "SELECT p.person_id, p.name, p.role, p.id_number, p.enrolled_us,
                (SELECT COUNT(*) FROM templates t WHERE t.person_id = p.person_id AND t.model = ?1),
                (SELECT COUNT(*) FROM templates t WHERE t.person_id = p.person_id AND t.model <> ?1)
         FROM persons p ORDER BY p.person_id",
    )?;
    let rows = stmt.query_map([model], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (person_id, name, role, id_number, enrolled_us, n, other) = row?;
        out.push(RosterEntry {
            person: Person {
                person_id,
                name,
                role: Role::parse(&role)?,
                id_number,
            },
            templates: n as usize,
            other_templates: other as usize,
            enrolled_us,
            classes: Vec::new(),
        });
    }
    for e in &mut out {
        e.classes = classes_of(conn, &e.person.person_id)?;
    }
    Ok(out)
}

/// The gallery of every template of `model` (persons in id order, each person's templates
/// adjacent), as loaded at start.
pub fn load_gallery(conn: &Connection, model: &str, dim: usize) -> Result<Gallery, RosterError> {
    let mut gallery = Gallery::new(model, dim);
    let mut stmt = conn.prepare(
        "SELECT p.person_id, p.name, p.role, t.vector
         FROM templates t JOIN persons p ON p.person_id = t.person_id
         WHERE t.model = ?1 AND t.dim = ?2
         ORDER BY p.person_id, t.id",
    )?;
    let mut rows = stmt.query(params![model, dim as i64])?;
    let mut current: Option<(String, String, String)> = None;
    let mut templates: Vec<Vec<f32>> = Vec::new();
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        if current.as_ref().is_some_and(|c| c.0 != id)
            && let Some((pid, name, role)) = current.take()
        {
            gallery.add(&pid, &name, &role, &std::mem::take(&mut templates));
        }
        if current.is_none() {
            current = Some((id, r.get(1)?, r.get(2)?));
        }
        let blob: Vec<u8> = r.get(3)?;
        templates.push(decode_vector(&blob));
    }
    if let Some((pid, name, role)) = current {
        gallery.add(&pid, &name, &role, &templates);
    }
    Ok(gallery)
}

/// The templates of one person for `model`.
pub fn load_gallery_of(
    conn: &Connection,
    model: &str,
    dim: usize,
    person_id: &str,
) -> Result<Vec<Vec<f32>>, RosterError> {
    let mut stmt = conn.prepare(
        "SELECT vector FROM templates WHERE model = ?1 AND dim = ?2 AND person_id = ?3 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![model, dim as i64, person_id], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for blob in rows {
        out.push(decode_vector(&blob?));
    }
    Ok(out)
}

fn decode_vector(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    #[test]
    fn persons_and_templates_round_trip_into_a_gallery() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        let tx = db::write_tx(&mut conn).unwrap();
        let anna = Person {
            person_id: "p1".into(),
            name: "Anna".into(),
            role: Role::Trainee,
            id_number: Some("410105199001011234".into()),
        };
        upsert_person(&tx, &anna, 1).unwrap();
        let t = |v: &'static [f32], sha: &'static str| NewTemplate {
            model: "m",
            vector: v,
            photo_sha256: sha,
            face_px: 100,
            det_score: 0.9,
            sharpness: 50.0,
            liveness: Some(0.99),
        };
        assert!(add_template(&tx, "p1", &t(&[1.0, 0.0], "a"), 1).unwrap());
        assert!(
            !add_template(&tx, "p1", &t(&[1.0, 0.0], "a"), 1).unwrap(),
            "same photo twice"
        );
        assert!(add_template(&tx, "p1", &t(&[0.0, 1.0], "b"), 1).unwrap());
        let ben = Person {
            person_id: "p2".into(),
            name: "Ben".into(),
            role: Role::Teacher,
            id_number: None,
        };
        upsert_person(&tx, &ben, 2).unwrap();
        add_template(
            &tx,
            "p2",
            &NewTemplate {
                model: "other",
                ..t(&[0.6, 0.8], "c")
            },
            2,
        )
        .unwrap();
        tx.commit().unwrap();

        let g = load_gallery(&conn, "m", 2).unwrap();
        assert_eq!((g.persons().len(), g.templates()), (1, 2));
        let m = g.search(&[0.0, 1.0]).unwrap();
        assert_eq!(g.persons()[m.person].person_id, "p1");
        let l = list(&conn, "m").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].templates, l[1].templates, l[1].other_templates), (2, 0, 1));
        assert_eq!(l[0].person.id_number_masked().unwrap(), "410105********1234");
        assert!(has_photo(&conn, "p1", "m", "b").unwrap());
        // Classes: a trainee's count towards the class, a teacher's do not.
        let tx = db::write_tx(&mut conn).unwrap();
        let c1 = ["c1".to_string()];
        change_classes(&tx, "p1", ClassChange::Set(&c1)).unwrap();
        change_classes(&tx, "p2", ClassChange::Add(&c1)).unwrap();
        tx.commit().unwrap();
        assert_eq!(trainees_of(&conn, "c1").unwrap(), ["p1"]);
        assert_eq!(teachers(&conn).unwrap(), ["p2"]);
        assert_eq!(classes_of(&conn, "p2").unwrap(), ["c1"]);
        let two = ["c1".to_string()];
        fn add<'a>(p: &str, role: Role, c: &'a [String]) -> (String, Role, ClassChange<'a>) {
            (p.to_string(), role, ClassChange::Add(c))
        }
        assert_eq!(
            check_class_sizes(&conn, &[add("p3", Role::Trainee, &[])], Some(1)).unwrap(),
            Ok(())
        );
        let big = check_class_sizes(&conn, &[add("p3", Role::Trainee, &two)], Some(1))
            .unwrap()
            .unwrap_err();
        assert_eq!((big.class_id.as_str(), big.trainees, big.at), ("c1", 2, 0));
        assert_eq!(
            check_class_sizes(&conn, &[add("p3", Role::Teacher, &two)], Some(1)).unwrap(),
            Ok(())
        );
        assert_eq!(
            check_class_sizes(&conn, &[add("p3", Role::Trainee, &two)], None).unwrap(),
            Ok(())
        );
        // p1 moved out of c1 by a Set makes room for p3.
        let none: &'static [String] = &[];
        let moves = [
            ("p1".to_string(), Role::Trainee, ClassChange::Set(none)),
            add("p3", Role::Trainee, &two),
        ];
        assert_eq!(check_class_sizes(&conn, &moves, Some(1)).unwrap(), Ok(()));
        assert!(parse_classes("c1; c2;;c1").unwrap() == ["c1", "c2"]);
        assert!(parse_classes("c 1").is_err());
        assert!(Role::parse("pilot").is_err());
        assert!(check_person_id("a b").is_err());
    }
}
