"""The DVD-rental schema as a MariaDB/MySQL dump writes it (Sakila style).

Foreign keys are declared in CREATE TABLE, including the staff <-> store cycle, which loads
because the build's session runs with foreign_key_checks = 0 (as mysqldump output does).
"""

from __future__ import annotations

LAST_UPDATE = "last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
ENGINE = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
FK = "ON DELETE RESTRICT ON UPDATE CASCADE"

TABLES: tuple[str, ...] = (
    f"""CREATE TABLE actor (
  actor_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
  first_name VARCHAR(45) NOT NULL,
  last_name VARCHAR(45) NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (actor_id),
  KEY idx_actor_last_name (last_name)
) {ENGINE}""",
    f"""CREATE TABLE country (
  country_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
  country VARCHAR(50) NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (country_id)
) {ENGINE}""",
    f"""CREATE TABLE city (
  city_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
  city VARCHAR(50) NOT NULL,
  country_id SMALLINT UNSIGNED NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (city_id),
  KEY idx_fk_country_id (country_id),
  CONSTRAINT fk_city_country FOREIGN KEY (country_id) REFERENCES country (country_id) {FK}
) {ENGINE}""",
    f"""CREATE TABLE address (
  address_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
  address VARCHAR(50) NOT NULL,
  address2 VARCHAR(50) DEFAULT NULL,
  district VARCHAR(20) NOT NULL,
  city_id SMALLINT UNSIGNED NOT NULL,
  postal_code VARCHAR(10) DEFAULT NULL,
  phone VARCHAR(20) NOT NULL,
  location POINT NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (address_id),
  KEY idx_fk_city_id (city_id),
  SPATIAL KEY idx_location (location),
  CONSTRAINT fk_address_city FOREIGN KEY (city_id) REFERENCES city (city_id) {FK}
) {ENGINE}""",
    f"""CREATE TABLE category (
  category_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(25) NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (category_id)
) {ENGINE}""",
    f"""CREATE TABLE language (
  language_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name CHAR(20) NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (language_id)
) {ENGINE}""",
    f"""CREATE TABLE film (
  film_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
  title VARCHAR(128) NOT NULL,
  description TEXT DEFAULT NULL,
  release_year YEAR DEFAULT NULL,
  language_id TINYINT UNSIGNED NOT NULL,
  original_language_id TINYINT UNSIGNED DEFAULT NULL,
  rental_duration TINYINT UNSIGNED NOT NULL DEFAULT 3,
  rental_rate DECIMAL(4,2) NOT NULL DEFAULT 4.99,
  length SMALLINT UNSIGNED DEFAULT NULL,
  replacement_cost DECIMAL(5,2) NOT NULL DEFAULT 19.99,
  rating ENUM('G','PG','PG-13','R','NC-17') DEFAULT 'G',
  special_features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes')
    DEFAULT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (film_id),
  KEY idx_title (title),
  KEY idx_fk_language_id (language_id),
  KEY idx_fk_original_language_id (original_language_id),
  CONSTRAINT fk_film_language FOREIGN KEY (language_id) REFERENCES language (language_id) {FK},
  CONSTRAINT fk_film_language_original FOREIGN KEY (original_language_id)
    REFERENCES language (language_id) {FK}
) {ENGINE}""",
    f"""CREATE TABLE film_actor (
  actor_id SMALLINT UNSIGNED NOT NULL,
  film_id SMALLINT UNSIGNED NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (actor_id, film_id),
  KEY idx_fk_film_id (film_id),
  CONSTRAINT fk_film_actor_actor FOREIGN KEY (actor_id) REFERENCES actor (actor_id) {FK},
  CONSTRAINT fk_film_actor_film FOREIGN KEY (film_id) REFERENCES film (film_id) {FK}
) {ENGINE}""",
    f"""CREATE TABLE film_category (
  film_id SMALLINT UNSIGNED NOT NULL,
  category_id TINYINT UNSIGNED NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (film_id, category_id),
  CONSTRAINT fk_film_category_film FOREIGN KEY (film_id) REFERENCES film (film_id) {FK},
  CONSTRAINT fk_film_category_category FOREIGN KEY (category_id)
    REFERENCES category (category_id) {FK}
) {ENGINE}""",
    f"""CREATE TABLE film_text (
  film_id SMALLINT UNSIGNED NOT NULL,
  title VARCHAR(255) NOT NULL,
  description TEXT,
  PRIMARY KEY (film_id),
  FULLTEXT KEY idx_title_description (title, description)
) {ENGINE}""",
    f"""CREATE TABLE store (
  store_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT,
  manager_staff_id TINYINT UNSIGNED NOT NULL,
  address_id SMALLINT UNSIGNED NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (store_id),
  UNIQUE KEY idx_unique_manager (manager_staff_id),
  KEY idx_fk_address_id (address_id),
  CONSTRAINT fk_store_staff FOREIGN KEY (manager_staff_id) REFERENCES staff (staff_id) {FK},
  CONSTRAINT fk_store_address FOREIGN KEY (address_id) REFERENCES address (address_id) {FK}
) {ENGINE}""",
    f"""CREATE TABLE staff (
  staff_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT,
  first_name VARCHAR(45) NOT NULL,
  last_name VARCHAR(45) NOT NULL,
  address_id SMALLINT UNSIGNED NOT NULL,
  picture BLOB DEFAULT NULL,
  email VARCHAR(50) DEFAULT NULL,
  store_id TINYINT UNSIGNED NOT NULL,
  active TINYINT(1) NOT NULL DEFAULT 1,
  username VARCHAR(16) NOT NULL,
  password VARCHAR(40) BINARY DEFAULT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (staff_id),
  KEY idx_fk_store_id (store_id),
  KEY idx_fk_address_id (address_id),
  CONSTRAINT fk_staff_store FOREIGN KEY (store_id) REFERENCES store (store_id) {FK},
  CONSTRAINT fk_staff_address FOREIGN KEY (address_id) REFERENCES address (address_id) {FK}
) {ENGINE}""",
    f"""CREATE TABLE customer (
  customer_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
  store_id TINYINT UNSIGNED NOT NULL,
  first_name VARCHAR(45) NOT NULL,
  last_name VARCHAR(45) NOT NULL,
  email VARCHAR(50) DEFAULT NULL,
  address_id SMALLINT UNSIGNED NOT NULL,
  active TINYINT(1) NOT NULL DEFAULT 1,
  create_date DATETIME NOT NULL,
  preferences JSON DEFAULT NULL,
  last_update TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (customer_id),
  KEY idx_fk_store_id (store_id),
  KEY idx_fk_address_id (address_id),
  KEY idx_last_name (last_name),
  CONSTRAINT fk_customer_address FOREIGN KEY (address_id) REFERENCES address (address_id) {FK},
  CONSTRAINT fk_customer_store FOREIGN KEY (store_id) REFERENCES store (store_id) {FK}
) {ENGINE}""",
    f"""CREATE TABLE inventory (
  inventory_id MEDIUMINT UNSIGNED NOT NULL AUTO_INCREMENT,
  film_id SMALLINT UNSIGNED NOT NULL,
  store_id TINYINT UNSIGNED NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (inventory_id),
  KEY idx_fk_film_id (film_id),
  KEY idx_store_id_film_id (store_id, film_id),
  CONSTRAINT fk_inventory_store FOREIGN KEY (store_id) REFERENCES store (store_id) {FK},
  CONSTRAINT fk_inventory_film FOREIGN KEY (film_id) REFERENCES film (film_id) {FK}
) {ENGINE}""",
    f"""CREATE TABLE rental (
  rental_id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  rental_date DATETIME NOT NULL,
  inventory_id MEDIUMINT UNSIGNED NOT NULL,
  customer_id SMALLINT UNSIGNED NOT NULL,
  return_date DATETIME DEFAULT NULL,
  staff_id TINYINT UNSIGNED NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (rental_id),
  UNIQUE KEY rental_date (rental_date, inventory_id, customer_id),
  KEY idx_fk_inventory_id (inventory_id),
  KEY idx_fk_customer_id (customer_id),
  KEY idx_fk_staff_id (staff_id),
  CONSTRAINT fk_rental_staff FOREIGN KEY (staff_id) REFERENCES staff (staff_id) {FK},
  CONSTRAINT fk_rental_inventory FOREIGN KEY (inventory_id)
    REFERENCES inventory (inventory_id) {FK},
  CONSTRAINT fk_rental_customer FOREIGN KEY (customer_id)
    REFERENCES customer (customer_id) {FK}
) {ENGINE}""",
    f"""CREATE TABLE payment (
  payment_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
  customer_id SMALLINT UNSIGNED NOT NULL,
  staff_id TINYINT UNSIGNED NOT NULL,
  rental_id INT UNSIGNED DEFAULT NULL,
  amount DECIMAL(5,2) NOT NULL,
  payment_date DATETIME NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (payment_id),
  KEY idx_fk_staff_id (staff_id),
  KEY idx_fk_customer_id (customer_id),
  CONSTRAINT chk_payment_amount CHECK (amount >= 0),
  CONSTRAINT fk_payment_rental FOREIGN KEY (rental_id) REFERENCES rental (rental_id)
    ON DELETE SET NULL ON UPDATE CASCADE,
  CONSTRAINT fk_payment_customer FOREIGN KEY (customer_id)
    REFERENCES customer (customer_id) {FK},
  CONSTRAINT fk_payment_staff FOREIGN KEY (staff_id) REFERENCES staff (staff_id) {FK}
) {ENGINE}""",
)

TRIGGERS: dict[str, str] = {
    "ins_film": """CREATE TRIGGER ins_film AFTER INSERT ON film FOR EACH ROW
BEGIN
  INSERT INTO film_text (film_id, title, description)
    VALUES (new.film_id, new.title, new.description);
END""",
    "upd_film": """CREATE TRIGGER upd_film AFTER UPDATE ON film FOR EACH ROW
BEGIN
  IF (old.title != new.title) OR NOT (old.description <=> new.description)
     OR (old.film_id != new.film_id) THEN
    UPDATE film_text SET title = new.title, description = new.description,
      film_id = new.film_id WHERE film_id = old.film_id;
  END IF;
END""",
    "del_film": """CREATE TRIGGER del_film AFTER DELETE ON film FOR EACH ROW
BEGIN
  DELETE FROM film_text WHERE film_id = old.film_id;
END""",
    "payment_date": """CREATE TRIGGER payment_date BEFORE INSERT ON payment FOR EACH ROW
  SET NEW.payment_date = COALESCE(NEW.payment_date, NOW())""",
}

ROUTINES: dict[str, str] = {
    "inventory_in_stock": """CREATE FUNCTION inventory_in_stock(p_inventory_id INT UNSIGNED)
RETURNS TINYINT(1) READS SQL DATA
BEGIN
  RETURN NOT EXISTS (SELECT 1 FROM rental
                     WHERE inventory_id = p_inventory_id AND return_date IS NULL);
END""",
    "film_in_stock": """CREATE PROCEDURE film_in_stock(IN p_film_id INT, IN p_store_id INT,
                               OUT p_film_count INT)
READS SQL DATA
BEGIN
  SELECT COUNT(*) INTO p_film_count FROM inventory
   WHERE film_id = p_film_id AND store_id = p_store_id AND inventory_in_stock(inventory_id);
END""",
}

VIEWS: dict[str, str] = {
    "customer_list": """CREATE VIEW customer_list AS
SELECT cu.customer_id AS ID, CONCAT(cu.first_name, ' ', cu.last_name) AS name,
       a.address AS address, a.postal_code AS `zip code`, a.phone AS phone, city.city AS city,
       country.country AS country, IF(cu.active, 'active', '') AS notes, cu.store_id AS SID
  FROM customer AS cu
  JOIN address AS a ON cu.address_id = a.address_id
  JOIN city ON a.city_id = city.city_id
  JOIN country ON city.country_id = country.country_id""",
    "film_list": """CREATE VIEW film_list AS
SELECT film.film_id AS FID, film.title AS title, film.description AS description,
       category.name AS category, film.rental_rate AS price, film.length AS length,
       film.rating AS rating,
       GROUP_CONCAT(CONCAT(actor.first_name, ' ', actor.last_name) SEPARATOR ', ') AS actors
  FROM film
  LEFT JOIN film_category ON film_category.film_id = film.film_id
  LEFT JOIN category ON category.category_id = film_category.category_id
  LEFT JOIN film_actor ON film.film_id = film_actor.film_id
  LEFT JOIN actor ON film_actor.actor_id = actor.actor_id
 GROUP BY film.film_id, category.name""",
}
