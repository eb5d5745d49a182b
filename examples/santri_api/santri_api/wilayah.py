"""Reference data for the generator: kabupaten/kota with an approximate centre
(lon, lat, WGS84) and a weight (how many santri/pesantren it gets relative to others),
plus name parts. Every point generated stays inside Indonesia's bounding box."""

# Indonesia's bounding box (lon_min, lat_min, lon_max, lat_max).
INDONESIA_BBOX = (94.9, -11.1, 141.1, 6.1)
# Points are scattered up to this many degrees around a kabupaten centre.
JITTER_DEG = 0.12

# (provinsi, kabupaten, lon, lat, weight)
KABUPATEN = [
    ("Jawa Timur", "Kab. Jombang", 112.23, -7.55, 6),
    ("Jawa Timur", "Kab. Kediri", 112.05, -7.82, 5),
    ("Jawa Timur", "Kab. Malang", 112.63, -8.10, 5),
    ("Jawa Timur", "Kota Surabaya", 112.75, -7.26, 4),
    ("Jawa Timur", "Kab. Sidoarjo", 112.72, -7.45, 3),
    ("Jawa Timur", "Kab. Pasuruan", 112.83, -7.73, 4),
    ("Jawa Timur", "Kab. Probolinggo", 113.30, -7.85, 3),
    ("Jawa Timur", "Kab. Situbondo", 114.00, -7.71, 3),
    ("Jawa Timur", "Kab. Bangkalan", 112.93, -7.05, 4),
    ("Jawa Timur", "Kab. Pamekasan", 113.48, -7.10, 4),
    ("Jawa Timur", "Kab. Sumenep", 113.87, -7.01, 4),
    ("Jawa Timur", "Kab. Lamongan", 112.33, -7.12, 3),
    ("Jawa Timur", "Kab. Gresik", 112.55, -7.16, 3),
    ("Jawa Timur", "Kab. Tuban", 111.95, -6.90, 2),
    ("Jawa Timur", "Kab. Banyuwangi", 114.20, -8.30, 3),
    ("Jawa Timur", "Kab. Jember", 113.70, -8.17, 4),
    ("Jawa Timur", "Kab. Ponorogo", 111.46, -7.87, 3),
    ("Jawa Tengah", "Kab. Demak", 110.64, -6.89, 3),
    ("Jawa Tengah", "Kab. Kudus", 110.84, -6.80, 3),
    ("Jawa Tengah", "Kab. Jepara", 110.67, -6.59, 2),
    ("Jawa Tengah", "Kab. Pati", 111.04, -6.75, 3),
    ("Jawa Tengah", "Kab. Rembang", 111.34, -6.71, 2),
    ("Jawa Tengah", "Kota Semarang", 110.42, -7.00, 2),
    ("Jawa Tengah", "Kab. Magelang", 110.22, -7.48, 2),
    ("Jawa Tengah", "Kab. Kebumen", 109.65, -7.67, 2),
    ("Jawa Tengah", "Kab. Banyumas", 109.23, -7.45, 2),
    ("Jawa Tengah", "Kab. Tegal", 109.14, -6.98, 2),
    ("Jawa Tengah", "Kab. Brebes", 108.90, -7.05, 2),
    ("Jawa Tengah", "Kota Surakarta", 110.82, -7.57, 1),
    ("Jawa Barat", "Kab. Cirebon", 108.56, -6.76, 3),
    ("Jawa Barat", "Kab. Tasikmalaya", 108.20, -7.50, 3),
    ("Jawa Barat", "Kab. Garut", 107.90, -7.22, 2),
    ("Jawa Barat", "Kab. Bandung", 107.60, -7.10, 2),
    ("Jawa Barat", "Kab. Bogor", 106.80, -6.55, 2),
    ("Jawa Barat", "Kab. Sukabumi", 106.70, -7.07, 2),
    ("Jawa Barat", "Kab. Cianjur", 107.14, -7.00, 2),
    ("Jawa Barat", "Kab. Karawang", 107.30, -6.32, 1),
    ("Jawa Barat", "Kab. Indramayu", 108.32, -6.45, 1),
    ("Banten", "Kab. Serang", 106.15, -6.12, 2),
    ("Banten", "Kab. Pandeglang", 105.95, -6.50, 2),
    ("Banten", "Kab. Lebak", 106.25, -6.56, 1),
    ("DI Yogyakarta", "Kab. Bantul", 110.33, -7.89, 2),
    ("DI Yogyakarta", "Kab. Sleman", 110.36, -7.72, 1),
    ("DI Yogyakarta", "Kota Yogyakarta", 110.37, -7.80, 1),
    ("DKI Jakarta", "Kota Jakarta Selatan", 106.81, -6.26, 1),
    ("DKI Jakarta", "Kota Jakarta Timur", 106.90, -6.23, 1),
    ("Aceh", "Kota Banda Aceh", 95.32, 5.55, 1),
    ("Aceh", "Kab. Aceh Besar", 95.50, 5.40, 1),
    ("Sumatera Utara", "Kota Medan", 98.67, 3.59, 1),
    ("Sumatera Utara", "Kab. Deli Serdang", 98.80, 3.50, 1),
    ("Sumatera Utara", "Kab. Mandailing Natal", 99.40, 0.78, 1),
    ("Sumatera Barat", "Kota Padang", 100.35, -0.95, 1),
    ("Sumatera Barat", "Kab. Agam", 100.10, -0.25, 1),
    ("Riau", "Kota Pekanbaru", 101.45, 0.51, 1),
    ("Jambi", "Kota Jambi", 103.61, -1.61, 1),
    ("Sumatera Selatan", "Kota Palembang", 104.75, -2.98, 1),
    ("Sumatera Selatan", "Kab. Ogan Komering Ilir", 105.30, -3.30, 1),
    ("Lampung", "Kab. Lampung Selatan", 105.55, -5.60, 1),
    ("Lampung", "Kab. Lampung Tengah", 105.30, -4.85, 1),
    ("Kalimantan Barat", "Kota Pontianak", 109.33, -0.03, 1),
    ("Kalimantan Selatan", "Kota Banjarmasin", 114.59, -3.32, 1),
    ("Kalimantan Selatan", "Kab. Banjar", 114.90, -3.30, 1),
    ("Kalimantan Timur", "Kota Samarinda", 117.15, -0.50, 1),
    ("Sulawesi Selatan", "Kota Makassar", 119.43, -5.14, 1),
    ("Sulawesi Selatan", "Kab. Bone", 120.20, -4.70, 1),
    ("Sulawesi Selatan", "Kab. Wajo", 120.15, -4.00, 1),
    ("Gorontalo", "Kab. Gorontalo", 122.90, 0.60, 1),
    ("Nusa Tenggara Barat", "Kab. Lombok Timur", 116.53, -8.53, 2),
    ("Nusa Tenggara Barat", "Kab. Lombok Tengah", 116.30, -8.70, 1),
    ("Nusa Tenggara Barat", "Kab. Bima", 118.70, -8.50, 1),
    ("Maluku", "Kota Ambon", 128.18, -3.70, 1),
    ("Papua", "Kota Jayapura", 140.70, -2.53, 1),
]

NAMA_DEPAN_L = [
    "Ahmad", "Muhammad", "Abdul", "Fauzi", "Rizki", "Hasan", "Husain", "Ilham", "Yusuf", "Zainal",
    "Arif", "Fikri", "Hafidz", "Syaiful", "Imam", "Khoirul", "Lutfi", "Maulana", "Ridwan", "Salman",
    "Taufik", "Umar", "Wahyu", "Yahya", "Zaki", "Bagus", "Dimas", "Fajar", "Agus", "Hamdan",
]
NAMA_DEPAN_P = [
    "Siti", "Nur", "Aisyah", "Fatimah", "Khadijah", "Zahra", "Laila", "Maryam", "Nabila", "Rahma",
    "Salsabila", "Ulfa", "Wardah", "Yulia", "Zulfa", "Dewi", "Fitri", "Indah", "Lestari", "Putri",
    "Rina", "Safira", "Annisa", "Hilya", "Husna", "Alfiyah", "Munawaroh", "Naila", "Qurrota", "Sholihah",
]
NAMA_TENGAH = [
    "Nur", "Abdul", "Amalia", "Rizqi", "Syifa", "Ainun", "Fadhil", "Hikmah", "Ilmi", "Kamila",
    "Miftah", "Najib", "Rahmat", "Sofia", "Tsabit", "Azka", "Ulin", "Wafa", "Zidan", "Faiz",
]
NAMA_BELAKANG = [
    "Hidayat", "Rahman", "Hakim", "Saputra", "Setiawan", "Kurniawan", "Wibowo", "Santoso", "Nugroho",
    "Pratama", "Ramadhan", "Firmansyah", "Hidayatullah", "Mubarok", "Syafii", "Anwar", "Mahmud", "Zuhri",
    "Ashari", "Hamzah", "Baihaqi", "Qomar", "Ilyas", "Munawar", "Rosyid", "Fadilah", "Azizah", "Rahmawati",
    "Nurhaliza", "Khasanah", "Mufidah", "Maghfiroh", "Rohmah", "Habibah", "Muzakki", "Arifin",
]
NAMA_PESANTREN = [
    "Al-Hikmah", "Nurul Huda", "Darussalam", "Miftahul Ulum", "Raudlatul Ulum", "Al-Amin", "Bahrul Ulum",
    "Al-Ikhlas", "Al-Hidayah", "Nurul Jadid", "Darul Falah", "Al-Muttaqin", "Riyadlus Sholihin",
    "Mambaul Ulum", "Al-Anwar", "Darul Quran", "Al-Falah", "Tarbiyatul Islam", "Hidayatul Mubtadiin",
    "Roudlotul Muta'allimin", "Al-Munawwir", "Sabilul Muttaqin", "Darul Ma'arif", "Al-Barokah",
]
KATEGORI_SKOR = ["umum", "tahfidz", "kitab", "bahasa"]
