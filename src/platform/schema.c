/* The platform's database schema as an ordered list of migrations.
 *
 * To change the schema, APPEND a migration (the next version number, a short name, the SQL);
 * never edit one that has shipped, since databases in the field already ran it. Each runs in
 * one transaction with its version bump (so it must not contain BEGIN/COMMIT), and a database
 * newer than this list is refused at open (db.c).
 *
 * Conventions: INTEGER PRIMARY KEY ids; times as UTC ISO 8601 text (acv_db_time); JSON
 * documents in TEXT columns named *_json (acv_db_row_json decodes them); foreign keys with
 * explicit ON DELETE behaviour; role sets as bit masks (platform/auth.h). */
#include "platform/db.h"

static const acv_migration MIGRATIONS[] = {
    {1, "users, tokens, projects, members, labels, audit log",
     /* Users: roles is a bit mask of ACV_ROLE_* (auth.h). */
     "CREATE TABLE users("
     "  id INTEGER PRIMARY KEY,"
     "  username TEXT NOT NULL UNIQUE COLLATE NOCASE,"
     "  password_hash TEXT NOT NULL,"
     "  roles INTEGER NOT NULL DEFAULT 0,"
     "  disabled INTEGER NOT NULL DEFAULT 0,"
     "  created_at TEXT NOT NULL,"
     "  updated_at TEXT NOT NULL,"
     "  last_login_at TEXT);"
     /* Login sessions and API tokens: only the SHA-256 of the secret is stored. */
     "CREATE TABLE tokens("
     "  id INTEGER PRIMARY KEY,"
     "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     "  kind TEXT NOT NULL CHECK(kind IN ('session','api')),"
     "  name TEXT NOT NULL DEFAULT '',"
     "  token_hash TEXT NOT NULL UNIQUE,"
     "  prefix TEXT NOT NULL,"
     "  created_at TEXT NOT NULL,"
     "  expires_at TEXT,"
     "  last_used_at TEXT,"
     "  revoked_at TEXT);"
     "CREATE INDEX tokens_user ON tokens(user_id, kind);"
     "CREATE TABLE projects("
     "  id INTEGER PRIMARY KEY,"
     "  name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
     "  description TEXT NOT NULL DEFAULT '',"
     "  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  updated_at TEXT NOT NULL);"
     /* role: one project role name (auth.h: owner, engineer, annotator, reviewer, operator, viewer). */
     "CREATE TABLE project_members("
     "  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
     "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     "  role TEXT NOT NULL CHECK(role IN ('owner','engineer','annotator','reviewer','operator','viewer')),"
     "  added_at TEXT NOT NULL,"
     "  PRIMARY KEY(project_id, user_id)) WITHOUT ROWID;"
     "CREATE INDEX project_members_user ON project_members(user_id);"
     /* Labels (classes): unique name per project, optional parent in the same project. */
     "CREATE TABLE labels("
     "  id INTEGER PRIMARY KEY,"
     "  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
     "  name TEXT NOT NULL,"
     "  parent_id INTEGER REFERENCES labels(id) ON DELETE SET NULL,"
     "  color TEXT NOT NULL,"
     "  aliases_json TEXT NOT NULL DEFAULT '[]',"
     "  description TEXT NOT NULL DEFAULT '',"
     "  created_at TEXT NOT NULL,"
     "  updated_at TEXT NOT NULL,"
     "  search TEXT NOT NULL DEFAULT '',"
     "  UNIQUE(project_id, name));"
     "CREATE INDEX labels_parent ON labels(parent_id);"
     /* search = lower(name) \n lower(alias) \n ... (labels.c keeps it); scanned through this
      * covering index for queries too short for trigrams. */
     "CREATE INDEX labels_search ON labels(project_id, search);"
     /* Substring search over names and aliases: a contentless FTS5 trigram index kept in step
      * by triggers (the rowid is the label id). Aliases are indexed one per line. */
     "CREATE VIRTUAL TABLE label_search USING fts5(name, aliases, content='', tokenize='trigram');"
     "CREATE TRIGGER labels_ai AFTER INSERT ON labels BEGIN"
     "  INSERT INTO label_search(rowid, name, aliases) VALUES (new.id, new.name,"
     "    (SELECT group_concat(value, char(10)) FROM json_each(new.aliases_json)));"
     "END;"
     "CREATE TRIGGER labels_ad AFTER DELETE ON labels BEGIN"
     "  INSERT INTO label_search(label_search, rowid, name, aliases) VALUES ('delete', old.id, old.name,"
     "    (SELECT group_concat(value, char(10)) FROM json_each(old.aliases_json)));"
     "END;"
     "CREATE TRIGGER labels_au AFTER UPDATE OF name, aliases_json ON labels BEGIN"
     "  INSERT INTO label_search(label_search, rowid, name, aliases) VALUES ('delete', old.id, old.name,"
     "    (SELECT group_concat(value, char(10)) FROM json_each(old.aliases_json)));"
     "  INSERT INTO label_search(rowid, name, aliases) VALUES (new.id, new.name,"
     "    (SELECT group_concat(value, char(10)) FROM json_each(new.aliases_json)));"
     "END;"
     /* Who did what to which object, when. actor_id and project_id are plain integers (no
      * foreign key) so the history outlives deleted users and projects. */
     "CREATE TABLE audit_log("
     "  id INTEGER PRIMARY KEY,"
     "  at TEXT NOT NULL,"
     "  actor_id INTEGER,"
     "  actor TEXT NOT NULL,"
     "  action TEXT NOT NULL,"
     "  target_type TEXT NOT NULL,"
     "  target_id INTEGER,"
     "  project_id INTEGER,"
     "  details_json TEXT NOT NULL DEFAULT '{}');"
     "CREATE INDEX audit_target ON audit_log(target_type, target_id);"
     "CREATE INDEX audit_project ON audit_log(project_id);"
     "CREATE INDEX audit_actor ON audit_log(actor_id);"},
    {2, "blobs, images, imports, annotation sets and items, tasks, reviews, dataset versions",
     /* Content-addressed file contents (blobs/ab/cdef..., SHA-256 hex). refs counts the rows
      * that point at a blob, so an unreferenced one can be collected. */
     "CREATE TABLE blobs("
     "  hash TEXT PRIMARY KEY,"
     "  size INTEGER NOT NULL,"
     "  refs INTEGER NOT NULL DEFAULT 0,"
     "  created_at TEXT NOT NULL);"
     /* Images of a project; the same bytes are stored once (blob) and listed once per project. */
     "CREATE TABLE images("
     "  id INTEGER PRIMARY KEY,"
     "  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
     "  blob_hash TEXT NOT NULL REFERENCES blobs(hash),"
     "  thumb_hash TEXT REFERENCES blobs(hash),"
     "  filename TEXT NOT NULL,"
     "  format TEXT NOT NULL,"
     "  width INTEGER NOT NULL,"
     "  height INTEGER NOT NULL,"
     "  channels INTEGER NOT NULL,"
     "  size INTEGER NOT NULL,"
     "  source TEXT NOT NULL DEFAULT 'upload',"
     "  import_id INTEGER,"
     "  uploaded_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  UNIQUE(project_id, blob_hash));"
     "CREATE INDEX images_project ON images(project_id, id);"
     "CREATE INDEX images_created ON images(project_id, created_at);"
     /* Archive imports (may run as jobs): status queued|running|succeeded|failed. */
     "CREATE TABLE imports("
     "  id INTEGER PRIMARY KEY,"
     "  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
     "  filename TEXT NOT NULL,"
     "  format TEXT,"
     "  status TEXT NOT NULL,"
     "  set_id INTEGER,"
     "  summary_json TEXT NOT NULL DEFAULT '{}',"
     "  error TEXT,"
     "  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  finished_at TEXT);"
     /* Annotation sets: one task type over a selection of a project's images. */
     "CREATE TABLE annotation_sets("
     "  id INTEGER PRIMARY KEY,"
     "  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
     "  name TEXT NOT NULL,"
     "  task TEXT NOT NULL CHECK(task IN ('cls','det','seg','ocr')),"
     "  lock_seconds INTEGER NOT NULL DEFAULT 600,"
     "  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  updated_at TEXT NOT NULL,"
     "  UNIQUE(project_id, name));"
     /* Batches of a set's images assigned to one annotator (NULL: in the pool to claim). */
     "CREATE TABLE annotation_tasks("
     "  id INTEGER PRIMARY KEY,"
     "  set_id INTEGER NOT NULL REFERENCES annotation_sets(id) ON DELETE CASCADE,"
     "  name TEXT NOT NULL,"
     "  assignee_id INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL);"
     /* One annotation document per (set, image): doc_json is {"tags":[...],"shapes":[...]};
      * revision increases on every save (stale saves are 409); status follows
      * new -> in_progress -> submitted -> accepted | rejected (rejected goes back to the
      * annotator). The lock keeps an image to its editor until lock_expires_at. */
     "CREATE TABLE annotation_items("
     "  set_id INTEGER NOT NULL REFERENCES annotation_sets(id) ON DELETE CASCADE,"
     "  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
     "  task_id INTEGER REFERENCES annotation_tasks(id) ON DELETE SET NULL,"
     "  status TEXT NOT NULL DEFAULT 'new'"
     "    CHECK(status IN ('new','in_progress','submitted','accepted','rejected')),"
     "  revision INTEGER NOT NULL DEFAULT 0,"
     "  doc_json TEXT NOT NULL DEFAULT '{\"tags\":[],\"shapes\":[]}',"
     "  annotated_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  annotated_at TEXT,"
     "  locked_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  lock_expires_at TEXT,"
     "  reviewed_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  reviewed_at TEXT,"
     "  review_comment TEXT,"
     "  updated_at TEXT NOT NULL,"
     "  PRIMARY KEY(set_id, image_id));"
     "CREATE INDEX annotation_items_status ON annotation_items(set_id, status);"
     "CREATE INDEX annotation_items_image ON annotation_items(image_id);"
     "CREATE INDEX annotation_items_task ON annotation_items(task_id);"
     /* Every review decision (the item keeps only the latest). */
     "CREATE TABLE reviews("
     "  id INTEGER PRIMARY KEY,"
     "  set_id INTEGER NOT NULL REFERENCES annotation_sets(id) ON DELETE CASCADE,"
     "  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
     "  revision INTEGER NOT NULL,"
     "  reviewer_id INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  annotator_id INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  decision TEXT NOT NULL CHECK(decision IN ('accept','reject')),"
     "  comment TEXT NOT NULL DEFAULT '',"
     "  created_at TEXT NOT NULL);"
     "CREATE INDEX reviews_set ON reviews(set_id, created_at);"
     /* Immutable dataset versions: a snapshot of a set's accepted items with a split. */
     "CREATE TABLE dataset_versions("
     "  id INTEGER PRIMARY KEY,"
     "  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
     "  set_id INTEGER REFERENCES annotation_sets(id) ON DELETE SET NULL,"
     "  name TEXT NOT NULL,"
     "  task TEXT NOT NULL,"
     "  split_json TEXT NOT NULL,"
     "  seed INTEGER NOT NULL,"
     "  content_hash TEXT NOT NULL,"
     "  labels_json TEXT NOT NULL,"
     "  counts_json TEXT NOT NULL,"
     "  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  UNIQUE(project_id, name));"
     "CREATE TABLE dataset_version_items("
     "  version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,"
     "  image_id INTEGER NOT NULL,"
     "  blob_hash TEXT NOT NULL REFERENCES blobs(hash),"
     "  filename TEXT NOT NULL,"
     "  width INTEGER NOT NULL,"
     "  height INTEGER NOT NULL,"
     "  split TEXT NOT NULL CHECK(split IN ('train','val','test')),"
     "  doc_json TEXT NOT NULL,"
     "  PRIMARY KEY(version_id, image_id));"},
    {3, "blob reference triggers and indexes",
     /* Rows that point at blobs, found by hash: the triggers below check that nothing still
      * names a blob before its row goes, and acv_blobs_gc recounts through them. */
     "CREATE INDEX images_blob ON images(blob_hash);"
     "CREATE INDEX images_thumb ON images(thumb_hash);"
     "CREATE INDEX dataset_version_items_blob ON dataset_version_items(blob_hash);"
     /* References are dropped by the database itself whenever a row that holds one is deleted,
      * however it is deleted: one image, one version, or a project's cascade through all of its
      * images and versions. (They are taken in code, acv_blobs_ref, which knows the sizes.) A
      * `blobs` row is deleted when its count reaches zero and no row names it any more (a
      * miscounted row stays for acv_blobs_gc to recount rather than fail the delete); its file
      * is removed after the commit by acv_blobs_collect. */
     "CREATE TRIGGER images_blobs_ad AFTER DELETE ON images BEGIN"
     "  UPDATE blobs SET refs = refs - 1 WHERE hash = old.blob_hash AND refs > 0;"
     "  UPDATE blobs SET refs = refs - 1 WHERE hash = old.thumb_hash AND refs > 0;"
     "  DELETE FROM blobs WHERE hash IN (old.blob_hash, old.thumb_hash) AND refs <= 0"
     "    AND NOT EXISTS (SELECT 1 FROM images i WHERE i.blob_hash = blobs.hash)"
     "    AND NOT EXISTS (SELECT 1 FROM images i WHERE i.thumb_hash = blobs.hash)"
     "    AND NOT EXISTS (SELECT 1 FROM dataset_version_items d WHERE d.blob_hash = blobs.hash);"
     "END;"
     "CREATE TRIGGER dataset_version_items_blobs_ad AFTER DELETE ON dataset_version_items BEGIN"
     "  UPDATE blobs SET refs = refs - 1 WHERE hash = old.blob_hash AND refs > 0;"
     "  DELETE FROM blobs WHERE hash = old.blob_hash AND refs <= 0"
     "    AND NOT EXISTS (SELECT 1 FROM images i WHERE i.blob_hash = blobs.hash)"
     "    AND NOT EXISTS (SELECT 1 FROM images i WHERE i.thumb_hash = blobs.hash)"
     "    AND NOT EXISTS (SELECT 1 FROM dataset_version_items d WHERE d.blob_hash = blobs.hash);"
     "END;"},
    {4, "jobs and their events, custom algorithms, model repository, evaluations, deployments, pre-annotations",
     /* Background jobs run by the scheduler (server/jobs.c) as child processes of the same
      * binary. kind: train | evaluate | pre_annotate. status follows queued -> running ->
      * succeeded | failed | cancelled. spec_json is what the job runs (resolved parameters);
      * result_json what it produced; dir the job's work folder, relative to the data folder. */
     "CREATE TABLE jobs("
     "  id INTEGER PRIMARY KEY,"
     "  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
     "  kind TEXT NOT NULL CHECK(kind IN ('train','evaluate','pre_annotate')),"
     "  status TEXT NOT NULL DEFAULT 'queued'"
     "    CHECK(status IN ('queued','running','succeeded','failed','cancelled')),"
     "  dataset_version_id INTEGER REFERENCES dataset_versions(id) ON DELETE SET NULL,"
     "  algorithm TEXT NOT NULL DEFAULT '',"
     "  params_json TEXT NOT NULL DEFAULT '{}',"
     "  spec_json TEXT NOT NULL DEFAULT '{}',"
     "  result_json TEXT NOT NULL DEFAULT '{}',"
     "  progress_json TEXT NOT NULL DEFAULT '{}',"
     "  error TEXT,"
     "  dir TEXT NOT NULL DEFAULT '',"
     "  pid INTEGER,"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
     "  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  started_at TEXT,"
     "  finished_at TEXT,"
     "  updated_at TEXT NOT NULL);"
     "CREATE INDEX jobs_project ON jobs(project_id, id);"
     "CREATE INDEX jobs_status ON jobs(status, id);"
     /* Everything a job reported, in order (seq from 1), kept for late viewers of the stream:
      * type log | step | epoch | status | result; data_json the event object. */
     "CREATE TABLE job_events("
     "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
     "  seq INTEGER NOT NULL,"
     "  type TEXT NOT NULL,"
     "  data_json TEXT NOT NULL,"
     "  created_at TEXT NOT NULL,"
     "  PRIMARY KEY(job_id, seq)) WITHOUT ROWID;"
     /* Custom networks a project registered as training algorithms (an ONNX file in the blob
      * stored at path, relative to the data folder; fine-tuned with a new classifier). */
     "CREATE TABLE custom_algorithms("
     "  id INTEGER PRIMARY KEY,"
     "  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
     "  name TEXT NOT NULL,"
     "  task TEXT NOT NULL,"
     "  description TEXT NOT NULL DEFAULT '',"
     "  path TEXT NOT NULL,"
     "  info_json TEXT NOT NULL DEFAULT '{}',"
     "  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  UNIQUE(project_id, name));"
     /* The model repository: models by unique name, versions numbered from 1 per model. A
      * version's model directory lives at dir (relative to the data folder) and is never
      * changed after creation. source: job | upload. lineage_json: dataset version, algorithm,
      * parameters, job, publisher. */
     "CREATE TABLE models("
     "  id INTEGER PRIMARY KEY,"
     "  name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
     "  task TEXT NOT NULL,"
     "  description TEXT NOT NULL DEFAULT '',"
     "  tags_json TEXT NOT NULL DEFAULT '[]',"
     "  project_id INTEGER REFERENCES projects(id) ON DELETE SET NULL,"
     "  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  updated_at TEXT NOT NULL);"
     "CREATE TABLE model_versions("
     "  id INTEGER PRIMARY KEY,"
     "  model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
     "  version INTEGER NOT NULL,"
     "  task TEXT NOT NULL,"
     "  source TEXT NOT NULL CHECK(source IN ('job','upload')),"
     "  dir TEXT NOT NULL,"
     "  description TEXT NOT NULL DEFAULT '',"
     "  tags_json TEXT NOT NULL DEFAULT '[]',"
     "  classes_json TEXT NOT NULL DEFAULT '[]',"
     "  metrics_json TEXT NOT NULL DEFAULT '{}',"
     "  lineage_json TEXT NOT NULL DEFAULT '{}',"
     "  info_json TEXT NOT NULL DEFAULT '{}',"
     "  job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,"
     "  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  UNIQUE(model_id, version));"
     /* Evaluation reports of a model version on a dataset version's split (run as a job). */
     "CREATE TABLE evaluations("
     "  id INTEGER PRIMARY KEY,"
     "  model_version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,"
     "  dataset_version_id INTEGER REFERENCES dataset_versions(id) ON DELETE SET NULL,"
     "  split TEXT NOT NULL,"
     "  job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,"
     "  status TEXT NOT NULL DEFAULT 'queued',"
     "  report_json TEXT NOT NULL DEFAULT '{}',"
     "  error TEXT,"
     "  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  finished_at TEXT);"
     "CREATE INDEX evaluations_version ON evaluations(model_version_id, dataset_version_id);"
     /* Deployments: a model version loaded in the server's inference pool. A version that is
      * deployed cannot be deleted (RESTRICT). */
     "CREATE TABLE deployments("
     "  id INTEGER PRIMARY KEY,"
     "  name TEXT NOT NULL UNIQUE,"
     "  model_version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE RESTRICT,"
     "  threads INTEGER NOT NULL DEFAULT 1,"
     "  status TEXT NOT NULL DEFAULT 'ready',"
     "  error TEXT,"
     "  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
     "  created_at TEXT NOT NULL,"
     "  updated_at TEXT NOT NULL);"
     /* What a pre-annotation job proposed for an item ({"tags":[{"label","score"}],"shapes":[...]})
      * and the item's revision it wrote, so the set's progress can tell proposals still
      * pending from those accepted unchanged, corrected and deleted. */
     "CREATE TABLE pre_annotations("
     "  set_id INTEGER NOT NULL,"
     "  image_id INTEGER NOT NULL,"
     "  job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,"
     "  model_version_id INTEGER REFERENCES model_versions(id) ON DELETE SET NULL,"
     "  revision INTEGER NOT NULL DEFAULT 0,"
     "  shapes_json TEXT NOT NULL,"
     "  created_at TEXT NOT NULL,"
     "  PRIMARY KEY(set_id, image_id),"
     "  FOREIGN KEY(set_id, image_id) REFERENCES annotation_items(set_id, image_id) ON DELETE CASCADE)"
     "  WITHOUT ROWID;"},
    /* The interface language each user chose (NULL: not chosen; the web UI then goes by the
     * browser). */
    {5, "users' interface language", "ALTER TABLE users ADD COLUMN lang TEXT;"},
};

const acv_migration *acv_schema_migrations(int *n)
{
    *n = (int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]);
    return MIGRATIONS;
}
